"""Scaling a service that names servers (``domain/scaling.py``), by exact comparison: new replicas follow the
placement rule of deployments (replica ``n`` on the servers in turn, at least one per server), removed ones
are the highest numbered, and each server's route changes on its own (a route is (server, route id))."""

from __future__ import annotations

from berth_scheduler.domain.placement import spread
from berth_scheduler.domain.routing import RouteOp
from berth_scheduler.domain.scaling import Slot, plan_slots, restore_ops, route_ops

AB = {"web": ["a", "b"]}
HOSTS = ("shop.example",)


def test_scaling_up_spreads_the_new_replicas_over_the_servers_in_turn() -> None:
    assert plan_slots({"web": 4}, {"web": [1, 2]}, AB) == ((Slot("web", 3, "a"), Slot("web", 4, "b")), ())
    assert plan_slots({"web": 5}, {"web": [1, 2]}, {"web": ["a", "b", "c"]}) == (
        (Slot("web", 3, "c"), Slot("web", 4, "a"), Slot("web", 5, "b")),
        (),
    )


def test_the_layout_after_a_scale_is_the_layout_of_a_deployment_with_that_many_replicas() -> None:
    servers = ["a", "b", "c"]
    current = list(range(1, 4))
    for want in (7, 4, 9, 3):
        add, remove = plan_slots({"web": want}, {"web": current}, {"web": servers})
        gone = {s.replica for s in remove}
        current = sorted([n for n in current if n not in gone] + [s.replica for s in add])
        placed = {s.replica: s.server_id for s in add + remove}
        assert all(placed[n] == spread(servers, want)[n - 1] for n in placed if n <= want)
        assert current == list(range(1, want + 1))


def test_scaling_down_removes_the_highest_numbered_and_keeps_one_replica_per_server() -> None:
    assert plan_slots({"web": 2}, {"web": [1, 2, 3, 4]}, AB) == ((), (Slot("web", 3, "a"), Slot("web", 4, "b")))
    # below the number of servers: raised to one per server, as a deployment does
    assert plan_slots({"web": 1}, {"web": [1, 2, 3, 4]}, AB) == ((), (Slot("web", 3, "a"), Slot("web", 4, "b")))
    assert plan_slots({"web": 1}, {"web": [1, 2]}, AB) == ((), ())


def test_services_without_servers_scale_on_local_and_slots_keep_their_server_in_json() -> None:
    assert plan_slots({"web": 2, "jobs": 1}, {"web": [1], "jobs": [1, 2]}, {"web": [], "jobs": ["a"]}) == (
        (Slot("web", 2, "local"),),
        (Slot("jobs", 2, "a"),),
    )
    assert Slot("web", 2).to_json() == ["web", 2]
    assert Slot("web", 3, "a").to_json() == ["web", 3, "a"]
    assert [Slot.from_json(j) for j in (["web", 2], ["web", 3, "a"])] == [Slot("web", 2), Slot("web", 3, "a")]


def test_each_server_that_gains_replicas_gets_its_own_upstreams() -> None:
    confirmed = {"a": ("http://shop-web-1:8080",), "b": ("http://shop-web-2:8080",)}
    added = [("a", "http://shop-web-3:8080"), ("b", "http://shop-web-4:8080")]
    assert route_ops("r1", HOSTS, ["a", "b"], confirmed, [], added) == [
        RouteOp("apply", "r1", HOSTS, ("http://shop-web-1:8080", "http://shop-web-3:8080"), "a"),
        RouteOp("apply", "r1", HOSTS, ("http://shop-web-2:8080", "http://shop-web-4:8080"), "b"),
    ]


def test_a_server_that_loses_replicas_keeps_the_rest_and_an_untouched_server_gets_no_command() -> None:
    confirmed = {
        "a": ("http://shop-web-1:8080", "http://shop-web-3:8080"),
        "b": ("http://shop-web-2:8080",),
    }
    assert route_ops("r1", HOSTS, ["a", "b"], confirmed, [("a", "http://shop-web-3:8080")], []) == [
        RouteOp("apply", "r1", HOSTS, ("http://shop-web-1:8080",), "a")
    ]


def test_a_first_replica_on_a_server_applies_the_route_and_the_last_one_removes_it() -> None:
    confirmed = {"a": ("http://shop-web-1:8080",)}
    assert route_ops("r1", HOSTS, ["a", "b"], confirmed, [], [("b", "http://shop-web-2:8080")]) == [
        RouteOp("apply", "r1", HOSTS, ("http://shop-web-2:8080",), "b")
    ]
    confirmed = {"a": ("http://shop-web-1:8080",), "b": ("http://shop-web-2:8080",)}
    assert route_ops("r1", HOSTS, ["a", "b"], confirmed, [("b", "http://shop-web-2:8080")], []) == [
        RouteOp("remove", "r1", server_id="b")
    ]
    # a server with nothing confirmed and nothing left: no command at all
    assert route_ops("r1", HOSTS, ["a", "b"], {}, [("b", "http://shop-web-2:8080")], []) == []


def test_what_puts_the_routes_back_after_a_step_that_was_not_confirmed() -> None:
    step = [
        RouteOp("apply", "r", ("a.test",), ("u1", "u2", "u3"), "s1"),  # grew on s1
        RouteOp("apply", "r", ("a.test",), ("u4",), "s2"),  # first replica on s2
        RouteOp("remove", "r", server_id="s3"),  # last replica on s3 left
    ]
    before = {("s1", "r"): (("a.test",), ("u1",)), ("s3", "r"): (("a.test",), ("u9",)), ("s9", "x"): ((), ("u",))}
    assert restore_ops(step, before) == (
        RouteOp("apply", "r", ("a.test",), ("u1",), "s1"),
        RouteOp("remove", "r", server_id="s2"),
        RouteOp("apply", "r", ("a.test",), ("u9",), "s3"),
    )
