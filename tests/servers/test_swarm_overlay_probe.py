"""A web service without a health check of its own on a Swarm where Berth reaches only the manager (an adopted
Swarm's workers are not servers it has): its tasks run on every node, Berth's readiness check reaches the
ones on the other nodes over the overlay network (the overlay probe on the manager's node, an ``nc`` exec
per check), the route on the manager's Traefik (the real proxy-sync) takes every ready task, and a version
switch under load has zero errors. The check is still a GET: a path that answers 404 is never ready."""

from __future__ import annotations

import asyncio

import pytest

from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import swarm_overlay
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.usecases.swarm_app import _tasks_of
from berth_scheduler.usecases.swarm_placement import SwarmPlace
from berth_scheduler.usecases.swarm_rollout import SwarmRollout, SwarmRolloutFailed
from berth_scheduler.usecases.swarm_routes import BusRoutes
from tests.servers import test_swarm_rollout as swarm_tests
from tests.servers.test_swarm_rollout import APP, NETWORK, Cluster, Load, Platform, _served, _upstreams_in, _version
from tests.support.images import busybox_image

# the Swarm of three namespace servers and the platform (proxy-sync, the manager's Traefik on the overlay)
site, three, cluster, platform = swarm_tests.site, swarm_tests.three, swarm_tests.cluster, swarm_tests.platform


def test_the_overlay_probe_is_busybox_asleep_on_the_overlay_and_each_check_one_nc() -> None:
    assert swarm_overlay.probe_name("berth") == "berth-probe-berth"
    assert swarm_overlay.probe_body("berth") == {
        "Image": "berth/busybox:1",
        "Cmd": ["sleep", "2147483647"],
        "Entrypoint": [],
        "User": "0:0",
        "Labels": {"berth.managed": "true", "berth.overlay-probe": "berth"},
        "StopTimeout": 1,
        "HostConfig": {"NetworkMode": "berth", "RestartPolicy": {"Name": "unless-stopped"}},
        "NetworkingConfig": {"EndpointsConfig": {"berth": {}}},
    }
    assert swarm_overlay.connect_argv("10.0.1.7", 8080, 2.5) == ["nc", "-w", "3", "10.0.1.7", "8080"]
    assert swarm_overlay.connect_argv("10.0.1.7", 80, 0.2) == ["nc", "-w", "1", "10.0.1.7", "80"]
    said = "nc: can't connect to remote host (10.0.1.7): Connection refused\n"
    assert swarm_overlay.connect_failure(said) == "connection refused"
    assert swarm_overlay.connect_failure("nc: bad address 'x'") == "nc: bad address 'x'"
    assert swarm_overlay.connect_failure("") == "the connection was closed with no HTTP answer"


@pytest.mark.slow
async def test_a_service_without_a_health_check_runs_and_is_routed_on_nodes_berth_does_not_reach(
    cluster: Cluster, platform: Platform
) -> None:
    image = busybox_image()
    manager = cluster.servers[0]
    for server in cluster.servers:  # the application's image on every node (what a user's Swarm has)
        server.load_image(image)
    by_name = {name: node for node, (name, _) in cluster.nodes.items()}
    manager_node = by_name[manager.name]
    reached = {manager_node: cluster.nodes[manager_node]}  # Berth reaches the manager only
    made: list[str] = []

    async def socket() -> str:
        return cluster.manager.socket_path

    async def probe_image() -> None:
        made.append(swarm_overlay.PROBE_IMAGE)

    overlay = OverlayProbe(socket, NETWORK, probe_image, timeout_s=2)
    probe = NodeProbe(cluster.pool, lambda: reached, timeout_s=2, overlay=overlay)
    routes = BusRoutes(platform.routes.units, platform.routes.sessionmaker, "overlay-probe", APP, timeout_s=60)

    def rollout(ready_timeout_s: float = 60) -> SwarmRollout:
        return SwarmRollout(
            cluster.manager,
            platform.manager_id,
            routes,
            probe,
            ready_timeout_s=ready_timeout_s,
            drain_s=1,
            interval_s=0.3,
        )

    # the first version: no health check of its own; one task per node, two of them on nodes Berth does not reach
    first = _version("dov1", "overlay one")
    assert not first.service.engine_checked
    serving = await rollout().run(first)
    tasks = dom.running(await cluster.manager.tasks(first.service.name), NETWORK)
    assert len({t.node_id for t in tasks} - {manager_node}) == 2, tasks
    assert sorted(serving) == sorted(dom.upstreams(tasks, 8080))
    assert all(probe.reaches_over_overlay(t) for t in tasks if t.node_id != manager_node)
    url = f"http://{manager.address}/"
    await _served(url, "overlay one")
    route_file = (platform.dynamic / f"{first.route_id}.yml").read_text()
    assert _upstreams_in(route_file) == sorted(dom.upstreams(tasks, 8080))
    # the probe runs on the manager's node, on the overlay, made once (its image asked for once)
    assert made == [swarm_overlay.PROBE_IMAGE]
    inspected = manager.docker(
        "inspect", "-f", "{{.State.Running}} {{json .NetworkSettings.Networks}}", "berth-probe-berth"
    )
    assert inspected.startswith("true ") and f'"{NETWORK}"' in inspected

    # every task, wherever it runs, answers on every look (the route follows what passes the check)
    assert sorted(t.task_id for t in await rollout().ready_tasks(first)) == sorted(t.task_id for t in tasks)
    # and ``rpc.scheduler.replicas`` shows each one ready, checked now (not ``unknown``)
    nodes = tuple((node, platform.manager_id if node == manager_node else None) for node in cluster.nodes)
    place = SwarmPlace("swarm1", platform.manager_id, NETWORK, nodes)
    found = await cluster.manager.service(first.service.name)
    assert found is not None
    shown = await _tasks_of(cluster.manager, probe, place, found, dict(nodes), {"dov1/web": (8080, "/")})
    assert sorted((r.node, r.health) for r in shown) == sorted(
        [(platform.manager_id, "ready")] + [(n, "ready") for n in cluster.nodes if n != manager_node]
    )

    # the next version under load through the manager's Traefik: zero errors
    stop = asyncio.Event()
    load = Load(url)
    running = asyncio.create_task(load.run(stop))
    await asyncio.sleep(1)
    second = _version("dov2", "overlay two")
    serving = await rollout().run(second)
    await asyncio.sleep(1)
    stop.set()
    await running
    assert load.errors == [], load.errors[:10]
    assert set(load.bodies) == {"overlay one", "overlay two"}, load.bodies
    tasks = dom.running(await cluster.manager.tasks(second.service.name), NETWORK)
    assert len({t.node_id for t in tasks} - {manager_node}) == 2 and len(serving) == 3
    assert await cluster.manager.service(first.service.name) is None

    # the check over the overlay is a GET like any other: a path answering 404 is not ready, and says so
    with pytest.raises(SwarmRolloutFailed) as failed:
        await rollout(ready_timeout_s=15).run(_version("dov404", "missing", health="/missing"))
    assert "0 of 3 tasks of shop-web-dov404 ready" in str(failed.value), failed.value
    assert dom.UNREACHED_UNCHECKED not in str(failed.value)
    assert len([said for said in probe.said.values() if "404" in said]) == 3, probe.said  # each node's task
    await _served(url, "overlay two")
    assert made == [swarm_overlay.PROBE_IMAGE]
