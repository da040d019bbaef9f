"""A web service without a health check of its own on a Swarm where Berth reaches only the manager (an adopted
Swarm's workers are not servers it has): its tasks run on every node, Berth's readiness check reaches the
ones on the other nodes over the overlay network (the overlay probe on the manager's node, an ``nc`` per
check run by its relay), the route on the manager's Traefik (the real proxy-sync) takes every ready task, and a version
switch under load has zero errors. The check is still a GET: a path that answers 404 is never ready."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth_common.catalogue import FormSwarm
from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import swarm_overlay
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.usecases.swarm_app import _tasks_of
from berth_scheduler.usecases.swarm_placement import SwarmPlace
from berth_scheduler.usecases.swarm_rollout import SwarmRollout, SwarmRolloutFailed
from berth_scheduler.usecases.swarm_routes import BusRoutes
from tests.servers import test_swarm_rollout as swarm_tests
from tests.servers.test_swarm_rollout import (
    APP,
    NETWORK,
    TEAM,
    Cluster,
    Load,
    Platform,
    _deployed,
    _deployed_version,
    _served,
    _start,
    _upstreams_in,
    _version,
    platform_of,
)
from tests.support.bus_helpers import Collector
from tests.support.images import busybox_image

# the Swarm of three namespace servers and the platform (proxy-sync, the manager's Traefik on the overlay)
site, three, cluster, platform = swarm_tests.site, swarm_tests.three, swarm_tests.cluster, swarm_tests.platform


def test_the_overlay_probe_is_busybox_asleep_on_the_overlay_and_checks_are_lines_to_its_relay() -> None:
    assert swarm_overlay.probe_name("berth") == "berth-probe-berth"
    assert swarm_overlay.probe_body("berth") == {
        "Image": "berth/busybox:1",
        "Cmd": ["sleep", "2147483647"],
        "Entrypoint": [],
        "User": "0:0",
        "Labels": {"berth.managed": "true", "berth.overlay-probe": "berth"},
        "StopTimeout": 1,
        "HostConfig": {"NetworkMode": "berth", "RestartPolicy": {"Name": "unless-stopped"}, "Init": True},
        "NetworkingConfig": {"EndpointsConfig": {"berth": {}}},
    }
    # one exec, the relay, for every check: its script is a constant argument, its parameter nc's -w
    assert swarm_overlay.relay_argv(2.5) == ["sh", "-c", swarm_overlay.RELAY_SCRIPT, "berth-relay", "3"]
    assert swarm_overlay.relay_argv(0.2)[3:] == ["berth-relay", "1"]
    # a check is a line of numbers, an IP address and the request: letters, digits and /.:_- as they are,
    # any other byte a printf octal escape (no space, backslash or quote of its own reaches the relay)
    request = b"GET /health?x=1 HTTP/1.0\r\nHost: 10.0.1.7:8080\r\n\r\n"
    assert swarm_overlay.check_line(7, "10.0.1.7", 8080, request) == (
        b"7 10.0.1.7 8080 GET\\0040/health\\0077x\\00751\\0040HTTP/1.0\\0015\\0012"
        b"Host:\\004010.0.1.7:8080\\0015\\0012\\0015\\0012\n"
    )
    odd = bytes(range(256))  # every byte: 67 as they are, 189 escapes (the relay's printf turns them back:
    escaped = swarm_overlay.check_line(1, "10.0.1.7", 80, odd).split(b" ")[3]  # test_swarm_overlay_relay.py)
    assert len(escaped) == 67 + 5 * 189 + 1 and set(escaped) <= swarm_overlay.AS_IS | set(b"\\\n")
    assert swarm_overlay.check_line(8, "fd00::0:7", 80, b"") == b"8 fd00::7 80 \n"
    for number in (-1, 10**12, True, "7"):
        with pytest.raises(ValueError):
            swarm_overlay.check_line(number, "10.0.1.7", 80, request)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            swarm_overlay.close_line(number)  # type: ignore[arg-type]
    for address in ("10.0.1.7 80", "10.0.1.7;reboot", "-e", "web", "$(id)", ""):
        with pytest.raises(ValueError):
            swarm_overlay.check_line(1, address, 8080, request)
    for port in (0, 65536, -1, True, "80"):
        with pytest.raises(ValueError):
            swarm_overlay.check_line(1, "10.0.1.7", port, request)  # type: ignore[arg-type]
    assert swarm_overlay.close_line(7) == b"7 close\n"
    # the relay's output: frames (headers padded to 24 bytes), whole however it is cut
    out = b"7 o 5".ljust(23) + b"\nHTTP/" + b"8 o 0".ljust(23) + b"\n" + b"7 e 3".ljust(23) + b"\nnc!"
    frames = swarm_overlay.Frames()
    got = [f for i in range(len(out)) for f in frames.feed(out[i : i + 1])]
    assert got == [
        swarm_overlay.Frame(7, "o", b"HTTP/"),
        swarm_overlay.Frame(8, "o", b""),
        swarm_overlay.Frame(7, "e", b"nc!"),
    ]
    assert swarm_overlay.Frames().feed(b"7 o 12\n1 o 5\n") == []  # a frame's bytes may hold a newline
    with pytest.raises(ValueError):
        swarm_overlay.Frames().feed(b"sh: syntax error\n")
    # the script's sizes are the domain's: a header of 24 bytes, chunks of 1024, a frame whole in one write
    assert (swarm_overlay.HEADER, swarm_overlay.CHUNK, swarm_overlay.FRAME_MAX) == (24, 1024, 1048)
    for part in ("ibs=1024 count=1 obs=1 seek=24 oflag=seek_bytes", "'%-23s\\n'", "bs=4096"):
        assert part in swarm_overlay.RELAY_SCRIPT, part
    assert "lock" not in swarm_overlay.RELAY_SCRIPT  # a frame is one write of at most PIPE_BUF bytes
    assert swarm_overlay.reaps({"HostConfig": {"Init": True}})
    assert not swarm_overlay.reaps({"HostConfig": {"Init": None}}) and not swarm_overlay.reaps({})
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

    # a node's answer may take seconds on a machine a whole suite loads
    overlay = OverlayProbe(socket, NETWORK, probe_image, timeout_s=5)
    probe = NodeProbe(cluster.pool, lambda: reached, timeout_s=5, overlay=overlay)
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


@pytest.fixture
async def adopting(cluster: Cluster, nats_server, database, tmp_root: Path, unique: str) -> AsyncIterator[Platform]:
    """The platform told of the manager only: the Swarm's two workers are nodes Berth does not reach."""
    async with platform_of(cluster, nats_server, database, tmp_root, unique, announced=1) as made:
        yield made


async def _adopted(platform: Platform, nats_url: str) -> dict:
    """``cmd.swarm.form`` with ``adopt`` on the manager alone, as the api sends it; the scheduler's answer."""
    answers = await Collector().start(nats_url, "evt.swarm.>")
    try:
        command = FormSwarm(
            swarm_id="swarm-adopted", team_id=TEAM, attempt=1, manager_server_id=platform.manager_id, adopt=True
        )
        await platform.api.publish(command)
        deadline = time.monotonic() + 60
        while not answers.items:
            assert time.monotonic() < deadline, "no answer to cmd.swarm.form"
            await asyncio.sleep(0.2)
    finally:
        await answers.close()
    return answers.items[0][0]


@pytest.mark.slow
async def test_the_scheduler_deploys_a_service_without_a_health_check_on_an_adopted_swarm_to_every_node(
    cluster: Cluster, adopting: Platform, nats_server
) -> None:
    """The scheduler's own path (``cmd.deployment.start`` placed on the adopted Swarm's manager): it makes the
    overlay probe on the manager (delivering its image there first), the tasks on the workers pass its check,
    every task is routed, and the next version switches under load with zero errors."""
    manager = cluster.servers[0]
    for server in cluster.servers[1:]:  # the workers have the image (Berth delivers only to servers it has)
        server.load_image(busybox_image())
    for service in await cluster.manager.services({"berth.app": "a1"}):  # what an earlier test left
        await cluster.manager.remove_service(service["Spec"]["Name"])
    manager.docker("rm", "-f", "berth-probe-berth")
    await asyncio.sleep(2)
    manager.docker("image", "rm", "-f", busybox_image())  # Berth delivers it to the manager
    answer = await _adopted(adopting, nats_server.url)
    assert answer["type"] == "evt.swarm.formed", answer
    nodes = {n["node_id"]: n["server_id"] for n in answer["data"]["nodes"]}
    assert sorted(nodes.values(), key=str) == sorted([adopting.manager_id, None, None], key=str)

    url = f"http://{manager.address}/"
    first = await _deployed(
        nats_server.url, adopting.api, _start("dep-one-adopted", "adopted one", adopting.manager_id)
    )
    assert first["type"] == "evt.deployment.succeeded", first
    await _served(url, "adopted one")
    version = _deployed_version(_start("dep-one-adopted", "", adopting.manager_id))
    tasks = dom.running(await cluster.manager.tasks(version.service.name), NETWORK)
    assert len(tasks) == 3 and len({t.node_id for t in tasks if nodes.get(t.node_id) is None}) == 2, tasks
    route_file = (adopting.dynamic / f"{version.route_id}.yml").read_text()
    assert _upstreams_in(route_file) == sorted(dom.upstreams(tasks, 8080))
    assert manager.docker("inspect", "-f", "{{.State.Running}}", "berth-probe-berth").strip() == "true"

    stop = asyncio.Event()
    load = Load(url)
    running = asyncio.create_task(load.run(stop))
    await asyncio.sleep(1)
    second = await _deployed(
        nats_server.url, adopting.api, _start("dep-two-adopted", "adopted two", adopting.manager_id)
    )
    await asyncio.sleep(1)
    stop.set()
    await running
    assert second["type"] == "evt.deployment.succeeded", second
    assert load.errors == [], load.errors[:10]
    assert set(load.bodies) == {"adopted one", "adopted two"}, load.bodies
    version = _deployed_version(_start("dep-two-adopted", "", adopting.manager_id))
    tasks = dom.running(await cluster.manager.tasks(version.service.name), NETWORK)
    assert len({t.node_id for t in tasks if nodes.get(t.node_id) is None}) == 2, tasks
