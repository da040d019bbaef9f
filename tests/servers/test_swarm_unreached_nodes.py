"""Readiness of a Swarm service's tasks on nodes Berth does not reach over SSH (an adopted Swarm's workers)
with a probe that has no overlay probe: Berth's GET cannot be made there, so such a task is ready only when
the service carries a health check the engine runs (Swarm reports a task running once it passed); without
one it is never counted ready. The scheduler's probe checks them over the overlay network instead
(``test_swarm_overlay_probe.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from berth_common import ssh
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import swarm as bodies
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.domain import swarms as sw
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.usecases.swarm_rollout import SwarmRollout, SwarmRolloutFailed
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers

SCRIPT = 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www'
NETWORK = "berth-adopted"
NS = 10**9


def _get(path: str) -> list[str]:
    """A Docker health check that GETs ``path`` inside the task (nc: busybox wget fails on overlays)."""
    script = f'printf "GET {path} HTTP/1.0\\r\\n\\r\\n" | nc -w 2 127.0.0.1 8080 | head -n 1 | grep -q " 200 "'
    return ["CMD", "sh", "-c", script]


def _version(deployment: str, healthcheck: list[str] | None = None, replicas: int = 3) -> dom.SwarmVersion:
    body = {
        "Image": busybox_image(),
        "Cmd": ["sh", "-c", SCRIPT],
        "Env": [f"BODY={deployment}"],
        "Labels": {"berth.app": "a1", "berth.service": "web", "berth.deployment": deployment, "berth.replica": "1"},
        "StopTimeout": 2,
    }
    if healthcheck is not None:  # a compose service's own healthcheck, as the container body carries it
        body["Healthcheck"] = {"Test": healthcheck, "Interval": NS // 2, "Timeout": 3 * NS, "Retries": 2}
    replica = ContainerSpec(f"shop-web-{deployment}-1", "web", "web", 1, body, container_port=8080, health_path="/")
    return dom.SwarmVersion("a1", replica, replicas, "shop-web", (), NETWORK)


def test_the_services_own_healthcheck_is_the_tasks_and_tells_whether_the_engine_checks_them() -> None:
    checked = _version("d1", _get("/")).service
    container = checked.body["TaskTemplate"]["ContainerSpec"]
    assert container["HealthCheck"] == {"Test": _get("/"), "Interval": NS // 2, "Timeout": 3 * NS, "Retries": 2}
    assert checked.engine_checked
    plain = _version("d2").service
    assert "HealthCheck" not in plain.body["TaskTemplate"]["ContainerSpec"] and not plain.engine_checked
    assert not _version("d3", ["NONE"]).service.engine_checked  # a check switched off checks nothing
    # a worker's health command takes the place of a healthcheck of its own
    worker = replace(_version("d4", _get("/")).replica, container_port=None, health_command=("true",))
    assert bodies.service_body(worker, 1, NETWORK).body["TaskTemplate"]["ContainerSpec"]["HealthCheck"]["Test"] == [
        "CMD",
        "true",
    ]


class NoRoutes:
    async def apply(self, server_id: str, route_id: str, hosts: Sequence[str], upstreams: Sequence[str]) -> None:
        raise AssertionError("a service without hosts has no route")


@dataclass
class Adopted:
    manager: SwarmEngine
    manager_node: str
    probe: NodeProbe  # it reaches the manager's node only


def _target(server: TestServer) -> ssh.SshTarget:
    return server.ssh_target()


@pytest.fixture(scope="module")
async def adopted(tmp_path_factory) -> AsyncIterator[Adopted]:
    """A Swarm of three of which Berth reaches only the manager (the workers are not servers it has)."""
    image = busybox_image()
    with running_servers(3) as servers:
        for server in servers:
            server.load_image(image)
        manager_server, *workers = servers
        pool = ssh.SshPool(Path(tmp_path_factory.mktemp("s")))
        try:
            engines = [SwarmEngine(await pool.docker_socket(s.name, _target(s))) for s in servers]
            mgr = engines[0]
            await mgr.init(bodies.init_body(manager_server.address))
            token = await mgr.join_token()
            for server, engine in zip(workers, engines[1:], strict=True):
                await engine.join(bodies.join_body(server.address, manager_server.address, token))
            await mgr.create_network(bodies.overlay_body(NETWORK))
            node = next(n["ID"] for n in await mgr.nodes() if sw.node_address(n) == manager_server.address)
            reached = {node: (manager_server.name, _target(manager_server))}
            yield Adopted(mgr, node, NodeProbe(pool, lambda: reached, timeout_s=2))
        finally:
            await pool.close()


def _rollout(adopted: Adopted, ready_timeout_s: float = 60) -> SwarmRollout:
    return SwarmRollout(
        adopted.manager, "mgr", NoRoutes(), adopted.probe, ready_timeout_s=ready_timeout_s, drain_s=0, interval_s=0.3
    )


@pytest.mark.slow
async def test_tasks_on_nodes_berth_does_not_reach_count_only_with_the_engines_health_check(adopted) -> None:
    # no health check: the tasks on the workers get no check at all, so they are never counted ready
    with pytest.raises(SwarmRolloutFailed) as failed:
        await _rollout(adopted, ready_timeout_s=12).run(_version("dplain"))
    assert "1 of 3 tasks of shop-web-dplain ready" in str(failed.value), failed.value
    assert dom.UNREACHED_UNCHECKED in str(failed.value)
    assert await adopted.manager.service("shop-web-dplain") is None

    # the service's own health check, which Swarm runs in every task: the workers' tasks are ready once
    # Swarm reports them running (it does so only after the check passed)
    version = _version("dchecked", _get("/"))
    rollout = _rollout(adopted)
    await rollout.run(version)
    ready = await rollout.ready_tasks(version)
    assert len(ready) == 3
    assert len({t.node_id for t in ready} - {adopted.manager_node}) == 2  # two of them on the workers

    # a health check that does not pass: no task runs, on any node, and the version is not rolled out
    with pytest.raises(SwarmRolloutFailed, match="0 of 3 tasks of shop-web-dbad ready"):
        await _rollout(adopted, ready_timeout_s=10).run(_version("dbad", _get("/missing")))
    assert [s["Spec"]["Name"] for s in await adopted.manager.services({"berth.app": "a1"})] == ["shop-web-dchecked"]
