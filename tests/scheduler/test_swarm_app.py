"""An application on a Swarm besides its rollouts, as data (``domain/swarm_app.py``): which nodes get its image,
the registry credentials its service is created with (sent as ``X-Registry-Auth`` by the Swarm adapter), the
services a removal finds, and its tasks as replicas. The end-to-end runs are in
``tests/servers/test_swarm_rollout.py``."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from berth_common.catalogue import ImageSource, RegistryAuth, ReplicaStatus
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.domain import swarm_app as dom
from berth_scheduler.domain import swarm_rollout
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.swarm_rollout import SwarmVersion


def test_berth_delivers_its_own_images_and_leaves_registry_images_to_the_nodes() -> None:
    assert dom.berth_delivers("berth/busybox:1", needs_build=False)
    assert dom.berth_delivers("berth/shop:abc", needs_build=True)
    assert dom.berth_delivers("registry.example:5000/shop:abc", needs_build=True)  # built here, pushed nowhere
    assert not dom.berth_delivers("registry.example:5000/shop:1", needs_build=False)
    assert not dom.berth_delivers("nginx:1.27", needs_build=False)


def test_the_image_goes_to_every_ready_node_berth_manages() -> None:
    nodes = [
        {"ID": "n3", "Status": {"State": "down"}},
        {"ID": "n1", "Status": {"State": "ready"}},
        {"ID": "n2", "Status": {"State": "ready"}},
        {"ID": "n4", "Status": {"State": "ready"}},  # not one of Berth's servers (an adopted Swarm's)
    ]
    managed = [("n1", "srv-b"), ("n2", "srv-a"), ("n3", "srv-c"), ("n4", None), ("n5", "srv-gone")]
    assert dom.ready_servers(nodes, managed) == ["srv-a", "srv-b"]
    assert dom.ready_servers([], managed) == []


def test_a_registry_image_service_carries_the_applications_credentials_for_its_registry() -> None:
    auth = RegistryAuth(registry="registry.example:5000", username="deploy", password="s3cret")
    source = ImageSource(image="registry.example:5000/team/shop:1", auth=auth)
    header = dom.service_auth("registry.example:5000/team/shop:1", source)
    assert header is not None
    assert json.loads(base64.urlsafe_b64decode(header)) == {
        "username": "deploy",
        "password": "s3cret",
        "serveraddress": "registry.example:5000",
    }
    assert dom.service_auth("other.example/team/shop:1", source) is None  # not that registry's credentials
    assert dom.service_auth("berth/shop:1", source) is None  # Berth's own: delivered, never pulled
    assert dom.service_auth("registry.example:5000/team/shop:1", ImageSource(image="x:1")) is None
    assert dom.service_auth("registry.example:5000/team/shop:1", None) is None
    replica = ContainerSpec("shop-web-d1-1", "web", "web", 1, {"Image": "registry.example:5000/team/shop:1"})
    version = SwarmVersion("a1", replica, 1, "shop-web", ("h",), "berth", header)
    assert "s3cret" not in repr(version) and header not in repr(version)


def test_services_and_tasks_are_read_exactly() -> None:
    specs = [
        {"services": [{"name": "web", "servers": ["mgr"]}, {"name": "jobs", "servers": ["s1", "s2"]}]},
        {"services": [{"name": "web"}]},
        {"services": [{"name": "web", "servers": ["mgr2"]}]},
        {},
    ]
    assert dom.placed_alone(specs) == {"mgr", "mgr2"}
    assert dom.app_labels("a1") == {"berth.app": "a1"}
    assert dom.swarm_task({"berth.app": "a1", "com.docker.swarm.task.id": "t1"})
    assert not dom.swarm_task({"berth.app": "a1", "berth.replica": "1"})
    assert dom.service_names([{"Spec": {"Name": "shop-web-d2"}}, {"Spec": {"Name": "shop-web-d1"}}]) == [
        "shop-web-d1",
        "shop-web-d2",
    ]
    service = {"Spec": {"Name": "shop-web-d2", "Labels": {"berth.deployment": "d2", "berth.service": "web"}}}

    def task(tid: str, slot: int, node: str, state: str, desired: str = "running") -> dict:
        return {"ID": tid, "Slot": slot, "NodeID": node, "DesiredState": desired, "Status": {"State": state}}

    history = [
        task("t2", 2, "n2", "running"),
        task("t1", 1, "n1", "running"),
        task("t0", 1, "n9", "failed", desired="shutdown"),  # slot 1's first task, on a dead worker
        task("t3", 3, "n9", "pending"),
    ]
    current = dom.current_tasks(history)
    assert [t["ID"] for t in current] == ["t1", "t2", "t3"]
    nodes = {"n1": "srv-a", "n2": "srv-b", "n9": None}
    views = [
        dom.task_view(service, current[0], history, nodes, True, "10.0.1.5", 8080),
        dom.task_view(service, current[1], history, nodes, False, "10.0.1.6", 8080),
        dom.task_view(service, current[2], history, nodes, None, None, 8080),
    ]
    assert views == [
        {"deployment_id": "d2", "service": "web", "replica": 1, "container": "shop-web-d2.1.t1", "state": "running",
         "health": "ready", "restarts": 1, "upstream": "http://10.0.1.5:8080", "node": "srv-a"},
        {"deployment_id": "d2", "service": "web", "replica": 2, "container": "shop-web-d2.2.t2", "state": "running",
         "health": "unready", "restarts": 0, "upstream": "http://10.0.1.6:8080", "node": "srv-b"},
        {"deployment_id": "d2", "service": "web", "replica": 3, "container": "shop-web-d2.3.t3", "state": "pending",
         "health": "unready", "restarts": 0, "upstream": None, "node": "n9"},
    ]  # fmt: skip
    assert ReplicaStatus(**views[0]).node == "srv-a"
    unchecked = dom.task_view(service, current[0], history, nodes, None, "10.0.1.5", 8080)
    assert unchecked["health"] == "unknown"


def test_the_task_containers_whose_logs_are_read() -> None:
    """Every task Swarm made a container for (history too, until Swarm prunes it), named as Swarm names it,
    with the server its node is; a task without a container (pending, rejected) has no log to read."""
    service = {"Spec": {"Name": "shop-jobs-d2", "Labels": {"berth.service": "jobs"}}}

    def task(tid: str, slot: int, node: str, state: str, desired: str = "running", container: str = "") -> dict:
        status = {"State": state, "ContainerStatus": {"ContainerID": container} if container else {}}
        return {"ID": tid, "Slot": slot, "NodeID": node, "DesiredState": desired, "Status": status}

    tasks = [
        task("t2", 2, "n2", "running", container="c2"),
        task("t1", 1, "n1", "running", container="c1"),
        task("t0", 1, "n9", "failed", desired="shutdown", container="c0"),  # slot 1's first task, on another node
        task("t3", 3, "n1", "pending"),  # not started: no container
        task("t4", 4, "n1", "running", desired="shutdown", container="c4"),  # being stopped
    ]
    assert dom.task_containers(service, tasks, {"n1": "srv-a", "n2": "srv-b"}) == [
        dom.TaskContainer("n9", None, "shop-jobs-d2.1.t0", "jobs", False),
        dom.TaskContainer("n1", "srv-a", "shop-jobs-d2.1.t1", "jobs", True),
        dom.TaskContainer("n2", "srv-b", "shop-jobs-d2.2.t2", "jobs", True),
        dom.TaskContainer("n1", "srv-a", "shop-jobs-d2.4.t4", "jobs", False),
    ]
    assert dom.container_name("shop-web-d1", {"ID": "tg", "NodeID": "n7"}) == "shop-web-d1.n7.tg"  # a global task
    assert dom.task_containers(service, [], {}) == []


def test_a_recreated_service_with_volumes_is_pinned_to_the_managers_node_and_stops_first() -> None:
    """``strategy: recreate`` with named volumes: every task on the manager's node (its local volume stays
    with it), Swarm's own updates stop first; the older versions are scaled to no task and remember how many
    they had, so an undo (even after a restart) starts them again."""
    nodes = (("nworker", "srv-w"), ("nmgr", "srv-m"), ("nother", None))
    assert swarm_rollout.pinned_node("recreate", 1, nodes, "srv-m") == "nmgr"
    assert swarm_rollout.pinned_node("recreate", 0, nodes, "srv-m") is None  # no volume: anywhere
    assert swarm_rollout.pinned_node("rolling", 1, nodes, "srv-m") is None
    assert swarm_rollout.pinned_node("recreate", 1, nodes, "srv-gone") is None
    body = {"Image": "berth/busybox:1", "Labels": {"berth.app": "a1", "berth.service": "db"}, "StopTimeout": 5}
    replica = ContainerSpec("shop-db-d1-1", "db", "worker", 1, body)
    version = SwarmVersion("a1", replica, 1, "shop-db", (), "berth", pinned="nmgr")
    assert version.recreate and not replace(version, pinned=None).recreate
    svc = version.service.body
    assert svc["TaskTemplate"]["Placement"] == {"Constraints": ["node.id==nmgr"]}
    assert svc["UpdateConfig"] == {"Parallelism": 1, "Order": "stop-first"}
    unpinned = replace(version, pinned=None).service.body
    assert "Placement" not in unpinned["TaskTemplate"] and "UpdateConfig" not in unpinned
    assert {k: v for k, v in svc.items() if k != "UpdateConfig"} == {
        **unpinned,
        "TaskTemplate": {**unpinned["TaskTemplate"], "Placement": {"Constraints": ["node.id==nmgr"]}},
    }
    with pytest.raises(ValueError):
        replace(version, pinned="n1 || node.role==worker").service

    old = {"Version": {"Index": 41}, "Spec": {"Name": "shop-db-d0", "Labels": {"berth.app": "a1"},
           "Mode": {"Replicated": {"Replicas": 1}}}}  # fmt: skip
    spec, index = swarm_rollout.scaled(old, 0)
    assert (spec, index) == (
        {"Name": "shop-db-d0", "Labels": {"berth.app": "a1", "berth.stopped-replicas": "1"},
         "Mode": {"Replicated": {"Replicas": 0}}},
        41,
    )  # fmt: skip
    stopped = {"Version": {"Index": 42}, "Spec": spec}
    assert (swarm_rollout.replicas_of(stopped), swarm_rollout.stopped_replicas(stopped)) == (0, 1)
    assert swarm_rollout.scaled(stopped, 0)[0]["Labels"]["berth.stopped-replicas"] == "1"  # again: still 1
    again, index = swarm_rollout.scaled(stopped, 1)
    assert (again, index) == (
        {"Name": "shop-db-d0", "Labels": {"berth.app": "a1"}, "Mode": {"Replicated": {"Replicas": 1}}},
        42,
    )
    assert swarm_rollout.stopped_replicas(old) == 0
    tasks = [{"Status": {"State": s}} for s in ("running", "shutdown", "starting", "complete", "failed")]
    assert swarm_rollout.still_running(tasks) == 2


async def test_the_service_is_created_with_the_registry_auth_header(tmp_path: Path) -> None:
    """The Swarm adapter sends ``X-Registry-Auth`` on ``POST /services/create`` (and no header without it)."""
    seen: list[tuple[str, str | None, dict]] = []

    async def create(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("X-Registry-Auth"), await request.json()))
        return web.json_response({"ID": f"svc{len(seen)}"}, status=201)

    app = web.Application()
    app.router.add_post("/v1.41/services/create", create)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = str(tmp_path / "docker.sock")
    await web.UnixSite(runner, sock).start()
    try:
        engine = SwarmEngine(sock)
        assert await engine.create_service({"Name": "s1"}, "eyJhIjoiYiJ9") == "svc1"
        assert await engine.create_service({"Name": "s2"}) == "svc2"
    finally:
        await runner.cleanup()
    assert seen == [
        ("/v1.41/services/create", "eyJhIjoiYiJ9", {"Name": "s1"}),
        ("/v1.41/services/create", None, {"Name": "s2"}),
    ]
