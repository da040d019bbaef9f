"""Placement is pure: which server runs each replica, the create body of a replica on a remote server, the
routes per server and their plan, the route commands per server, and the remote readiness probe's bytes;
all compared exactly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.adapters.remote_readiness import address_of, request_bytes, status_of
from berth_scheduler.domain import names
from berth_scheduler.domain.containers import container_spec, replica_slots
from berth_scheduler.domain.machine import Rollout, State, Timeouts
from berth_scheduler.domain.placement import Slot, replica_count, servers_in, slots, spread
from berth_scheduler.domain.routing import RouteOp, RoutePlan, RouteTarget, plan_routes, restore_ops
from berth_scheduler.usecases.rollout.routing import command_for, command_id
from berth_scheduler.usecases.rollout.steps import desired_routes, replica_upstream

DEP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
APP = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"


def app_spec(web_servers: list[str], web_replicas: int = 3, jobs_servers: list[str] | None = None) -> ApplicationSpec:
    web = {"kind": "web", "name": "web", "port": 8080, "replicas": web_replicas, "hosts": ["shop.example.com"]}
    jobs = {"kind": "worker", "name": "jobs", "replicas": 1}
    if web_servers:
        web["servers"] = web_servers
    if jobs_servers:
        jobs["servers"] = jobs_servers
    return ApplicationSpec.model_validate(
        {"name": "shop", "source": {"kind": "image", "image": "berth/shop:v1"}, "services": [web, jobs]}
    )


def test_replicas_are_spread_in_turn_with_at_least_one_per_server():
    assert spread(["a"], 3) == ["a", "a", "a"]
    assert spread(["a", "b"], 3) == ["a", "b", "a"]
    assert spread(["a", "b", "c"], 7) == ["a", "b", "c", "a", "b", "c", "a"]
    assert spread(["a", "b", "c"], 1) == ["a", "b", "c"]  # raised to one per server
    assert spread(["local", "b"], 2) == ["local", "b"]
    with pytest.raises(ValueError):
        spread([], 1)
    with pytest.raises(ValueError):
        spread(["a", "a"], 2)


def test_slots_of_a_spec_name_every_replica_and_its_server():
    spec = app_spec(["s1", "s2"], 3, ["s2", "s3"])
    web, jobs = spec.services
    assert slots(spec) == [
        Slot(web, 1, "s1"),
        Slot(web, 2, "s2"),
        Slot(web, 3, "s1"),
        Slot(jobs, 1, "s2"),
        Slot(jobs, 2, "s3"),
    ]
    assert [replica_count(s) for s in spec.services] == [3, 2]
    assert servers_in(spec) == ["s1", "s2", "s3"]
    assert replica_slots(spec) == [(web, 1), (web, 2), (web, 3), (jobs, 1), (jobs, 2)]
    plain = app_spec([], 2)
    assert servers_in(plain) == ["local"]
    assert [s.server_id for s in slots(plain)] == ["local", "local", "local"]


def test_a_remote_web_replica_publishes_nothing_and_joins_the_server_network():
    spec = app_spec(["s1"], 1)
    cs = container_spec(APP, DEP, spec, spec.services[0], 1, "berth/shop:v1", None, "team-1", "s1")
    assert cs.name == "berth-shop-web-0f1e2d3c-1"
    assert (cs.server_id, cs.remote, cs.host_port, cs.container_port) == ("s1", True, None, 8080)
    assert cs.upstream == "http://berth-shop-web-0f1e2d3c-1:8080"
    assert cs.body == {
        "Image": "berth/shop:v1",
        "Env": ["PORT=8080"],
        "Labels": {
            "berth.team": "team-1",
            "berth.app": APP,
            "berth.service": "web",
            "berth.deployment": DEP,
            "berth.replica": "1",
            "berth.kind": "web",
            "berth.managed": "true",
        },
        "StopTimeout": 10,
        "ExposedPorts": {"8080/tcp": {}},
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "Init": True,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        },
        "NetworkingConfig": {"EndpointsConfig": {"berth": {"Aliases": ["berth-shop-web-0f1e2d3c-1"]}}},
    }
    # a host port given for a remote replica is not published
    again = container_spec(APP, DEP, spec, spec.services[0], 1, "berth/shop:v1", 41000, None, "s1")
    assert "PortBindings" not in again.body["HostConfig"] and again.host_port is None
    worker = container_spec(APP, DEP, spec, spec.services[1], 1, "berth/shop:v1", None, None, "s1")
    assert worker.upstream is None and "berth" in worker.body["NetworkingConfig"]["EndpointsConfig"]


def _rollout() -> Rollout:
    return Rollout(DEP, APP, "team-1", State.VERIFYING, False, Timeouts(1, 1, 1, 1), 0.0, image="berth/shop:v1")


def test_each_server_routes_the_hosts_to_its_own_replicas():
    spec = app_spec(["local", "s1"], 3)
    web = spec.services[0]
    ready = [
        container_spec(APP, DEP, spec, web, 1, "i", 41001, None, "local"),
        container_spec(APP, DEP, spec, web, 2, "i", None, None, "s1"),
        container_spec(APP, DEP, spec, web, 3, "i", 41003, None, "local"),
        container_spec(APP, DEP, spec, spec.services[1], 1, "i", None, None, "local"),
    ]
    rid = names.route_id(APP, "web")
    assert desired_routes(_rollout(), spec, ready) == [
        RouteTarget(rid, ("shop.example.com",), ("http://127.0.0.1:41001", "http://127.0.0.1:41003"), "local"),
        RouteTarget(rid, ("shop.example.com",), ("http://berth-shop-web-0f1e2d3c-2:8080",), "s1"),
    ]


def test_a_plan_moves_a_route_from_one_server_to_another():
    hosts = ("shop.example.com",)
    before = [RouteTarget("app-x-web", hosts, ("http://old-a:80",), "a"), RouteTarget("app-x-web", hosts, ("u1",))]
    desired = [RouteTarget("app-x-web", hosts, ("u2",)), RouteTarget("app-x-web", hosts, ("http://new-b:80",), "b")]
    plan = plan_routes(before, desired)
    assert plan == RoutePlan(
        before=(RouteTarget("app-x-web", hosts, ("http://old-a:80",), "a"), RouteTarget("app-x-web", hosts, ("u1",))),
        steps=(
            (
                RouteOp("apply", "app-x-web", hosts, ("http://new-b:80",), "b"),
                RouteOp("apply", "app-x-web", hosts, ("u1", "u2"), "local"),
            ),
            (RouteOp("apply", "app-x-web", hosts, ("u2",), "local"), RouteOp("remove", "app-x-web", server_id="a")),
        ),
    )
    assert RoutePlan.from_json(plan.to_json()) == plan
    assert plan.to_json()["steps"][1][1] == {
        "kind": "remove",
        "route_id": "app-x-web",
        "hosts": [],
        "upstreams": [],
        "server_id": "a",
    }
    assert "server_id" not in plan.to_json()["steps"][1][0]  # local routes keep their earlier form
    assert restore_ops(plan, {("b", "app-x-web"), ("local", "app-x-web"), ("a", "app-x-web")}) == (
        RouteOp("apply", "app-x-web", hosts, ("http://old-a:80",), "a"),
        RouteOp("remove", "app-x-web", server_id="b"),
        RouteOp("apply", "app-x-web", hosts, ("u1",), "local"),
    )


def test_route_commands_name_their_server():
    op = RouteOp("apply", "app-x-web", ("shop.example.com",), ("http://n:80",), "s1")
    cmd = command_for(op, 4)
    assert cmd.model_dump() == {
        "route_id": "app-x-web",
        "generation": 4,
        "server_id": "s1",
        "hosts": ["shop.example.com"],
        "upstreams": ["http://n:80"],
        "entry_point": "web",
    }
    assert command_id(op, 4) == "route-s1-app-x-web-g4"
    assert command_id(RouteOp("remove", "app-x-web"), 5) == "route-app-x-web-g5"
    assert command_for(RouteOp("remove", "app-x-web", server_id="s1"), 5).model_dump() == {
        "route_id": "app-x-web",
        "generation": 5,
        "server_id": "s1",
    }


def test_recorded_replicas_upstreams():
    remote = SimpleNamespace(server_id="s1", name="berth-shop-web-0f1e2d3c-2", host_port=None)
    local = SimpleNamespace(server_id="local", name="berth-shop-web-0f1e2d3c-1", host_port=41001)
    assert replica_upstream(remote, 8080) == "http://berth-shop-web-0f1e2d3c-2:8080"
    assert replica_upstream(local, 8080) == "http://127.0.0.1:41001"
    assert replica_upstream(SimpleNamespace(server_id="s1", name="x", host_port=None), None) is None
    with pytest.raises(names.InvalidNameError):
        names.network_upstream("not a container", 80)


def test_the_remote_probe_sends_a_minimal_get_and_reads_the_status():
    assert request_bytes("172.18.0.5", 8080, "/up") == (
        b"GET /up HTTP/1.0\r\nHost: 172.18.0.5:8080\r\nUser-Agent: berth-readiness\r\n\r\n"
    )
    assert status_of(b"HTTP/1.1 204 No Content\r\n") == 204
    assert status_of(b"HTTP/1.0 503 Service Unavailable\r\n") == 503
    assert status_of(b"SSH-2.0-OpenSSH\r\n") is None
    assert status_of(b"") is None
    info = {
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "berth": {"IPAddress": "10.9.0.3"}}}
    }
    assert address_of(info) == "10.9.0.3"
    assert address_of({"NetworkSettings": {"Networks": {"berth": {"IPAddress": ""}}}}) is None
    assert address_of(None) is None
