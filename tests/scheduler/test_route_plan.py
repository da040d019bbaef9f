"""Upstream sets of each route step, and the exact restore on failure."""

from __future__ import annotations

from berth_scheduler.domain.routing import (
    RouteOp,
    RoutePlan,
    RouteTarget,
    left_behind,
    plan_routes,
    restore_ops,
    skipped_note,
)

A_OLD = RouteTarget("app-a-web", ("web-a.localhost",), ("http://127.0.0.1:1001", "http://127.0.0.1:1002"))
A_NEW = RouteTarget(
    "app-a-web", ("shop.example.com", "web-a.localhost"), ("http://127.0.0.1:2001", "http://127.0.0.1:2002")
)
ADMIN_OLD = RouteTarget("app-a-admin", ("admin-a.localhost",), ("http://127.0.0.1:1501",))
API_NEW = RouteTarget("app-a-api", ("api-a.localhost",), ("http://127.0.0.1:2501",))


def test_first_deployment_is_one_step_with_the_new_upstreams():
    plan = plan_routes([], [A_NEW])
    assert plan.steps == ((RouteOp("apply", "app-a-web", A_NEW.hosts, A_NEW.upstreams),),)
    assert not plan.has_old_upstreams


def test_redeploy_adds_new_next_to_old_then_takes_old_out():
    plan = plan_routes([A_OLD], [A_NEW])
    both = ("http://127.0.0.1:1001", "http://127.0.0.1:1002", "http://127.0.0.1:2001", "http://127.0.0.1:2002")
    assert plan.steps == (
        (RouteOp("apply", "app-a-web", A_NEW.hosts, both),),
        (RouteOp("apply", "app-a-web", A_NEW.hosts, A_NEW.upstreams),),
    )
    assert plan.has_old_upstreams


def test_services_added_and_removed():
    plan = plan_routes([A_OLD, ADMIN_OLD], [A_NEW, API_NEW])
    step1, step2 = plan.steps
    assert [op.route_id for op in step1] == ["app-a-api", "app-a-web"]
    assert step1[0] == RouteOp("apply", "app-a-api", API_NEW.hosts, API_NEW.upstreams)
    assert step2 == (
        RouteOp("apply", "app-a-web", A_NEW.hosts, A_NEW.upstreams),
        RouteOp("remove", "app-a-admin"),
    )


def test_unrouted_services_and_empty_previous_routes():
    no_hosts = RouteTarget("app-a-internal", (), ("http://127.0.0.1:3001",))
    removed_before = RouteTarget("app-a-web", (), ())
    plan = plan_routes([removed_before], [A_NEW, no_hosts])
    assert plan.steps == ((RouteOp("apply", "app-a-web", A_NEW.hosts, A_NEW.upstreams),),)


def test_restore_puts_back_exactly_what_was_there():
    plan = plan_routes([A_OLD, ADMIN_OLD], [A_NEW, API_NEW])
    assert restore_ops(plan, {"app-a-web", "app-a-api", "app-a-admin"}) == (
        RouteOp("apply", "app-a-admin", ADMIN_OLD.hosts, ADMIN_OLD.upstreams),
        RouteOp("remove", "app-a-api"),
        RouteOp("apply", "app-a-web", A_OLD.hosts, A_OLD.upstreams),
    )


def test_plan_survives_json():
    plan = plan_routes([A_OLD, ADMIN_OLD], [A_NEW, API_NEW])
    assert RoutePlan.from_json(plan.to_json()) == plan


def test_a_step_skips_the_removals_on_servers_left_behind_that_do_not_answer():
    step = (
        RouteOp("apply", "app-web", ("a.test",), ("http://n:8080",), "b"),
        RouteOp("remove", "app-web", server_id="a"),
        RouteOp("remove", "app-api", server_id="a"),
        RouteOp("remove", "app-web", server_id="d"),
        RouteOp("remove", "app-old"),  # local: always sent
    )
    sent, skipped = left_behind(step, ["a", "local"])
    assert sent == (step[0], step[3], step[4])
    assert skipped == (step[1], step[2])
    assert left_behind(step, []) == (step, ())
    assert skipped_note(skipped) == (
        "server a does not answer: route(s) app-web, app-api there not removed (its cleanup is skipped)"
    )
    assert skipped_note(()) == ""


def test_a_rolling_move_from_a_and_c_to_b_and_c_never_takes_c_out_of_service():
    hosts = ("shop.test",)
    before = [RouteTarget("w", hosts, ("http://old-a:80",), "a"), RouteTarget("w", hosts, ("http://old-c:80",), "c")]
    desired = [RouteTarget("w", hosts, ("http://new-b:80",), "b"), RouteTarget("w", hosts, ("http://new-c:80",), "c")]
    assert plan_routes(before, desired).steps == (
        (
            RouteOp("apply", "w", hosts, ("http://new-b:80",), "b"),
            RouteOp("apply", "w", hosts, ("http://old-c:80", "http://new-c:80"), "c"),  # both while the new warms
        ),
        (RouteOp("apply", "w", hosts, ("http://new-c:80",), "c"), RouteOp("remove", "w", server_id="a")),
    )
