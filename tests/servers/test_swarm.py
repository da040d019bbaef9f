"""Docker Swarm on three namespace servers, formed and driven through the Engine API over SSH: a service
version's tasks spread, answer on the overlay network, and move when a worker dies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from berth_common import ssh
from berth_scheduler.adapters.swarm import SwarmEngine, SwarmError
from berth_scheduler.domain import swarm as dom
from berth_scheduler.domain.containers import ContainerSpec
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers

SCRIPT = 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www'


def _replica(image: str = "berth/busybox:1") -> ContainerSpec:
    body = {
        "Image": image,
        "Cmd": ["sh", "-c", SCRIPT],
        "Env": ["BODY=hello from swarm", "PORT=8080"],
        "Labels": {"berth.app": "a1", "berth.service": "web", "berth.deployment": "d1", "berth.replica": "1"},
        "StopTimeout": 5,
        "HostConfig": {"NanoCpus": 500_000_000, "Memory": 64 * 1024 * 1024, "PortBindings": {"8080/tcp": []}},
    }
    return ContainerSpec("shop-web-d1-1", "web", "web", 1, body, container_port=8080, health_path="/")


def test_bodies_are_exact() -> None:
    assert dom.init_body("10.77.3.2") == {
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "10.77.3.2:2377",
        "ForceNewCluster": False,
    }
    assert dom.join_body("10.77.3.3", "10.77.3.2", "SWMTKN-1-abc123-def456") == {
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "10.77.3.3:2377",
        "RemoteAddrs": ["10.77.3.2:2377"],
        "JoinToken": "SWMTKN-1-abc123-def456",
    }
    for bad in ("10.0.0.1; id", "host name", ""):
        with pytest.raises(ValueError):
            dom.init_body(bad)
    with pytest.raises(ValueError):
        dom.join_body("10.0.0.3", "10.0.0.2", "--token=x")
    svc = dom.service_body(_replica(), 3, "berth-overlay")
    assert svc.name == "shop-web-d1"
    assert svc.body == {
        "Name": "shop-web-d1",
        "Labels": {"berth.app": "a1", "berth.service": "web", "berth.deployment": "d1"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "berth/busybox:1",
                "Env": ["BODY=hello from swarm", "PORT=8080"],
                "Labels": {"berth.app": "a1", "berth.service": "web", "berth.deployment": "d1"},
                "Args": ["sh", "-c", SCRIPT],
                "Init": True,
                "StopGracePeriod": 5_000_000_000,
            },
            "Resources": {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 * 1024 * 1024}},
            "RestartPolicy": {"Condition": "any", "Delay": 1_000_000_000, "MaxAttempts": 0},
            "Networks": [{"Target": "berth-overlay", "Aliases": ["web"]}],
            "LogDriver": {"Name": "json-file", "Options": {"max-size": "10m", "max-file": "3"}},
        },
        "Mode": {"Replicated": {"Replicas": 3}},
        "EndpointSpec": {"Mode": "dnsrr"},
    }
    with pytest.raises(ValueError):
        dom.service_body(_replica(), 1, "bad network")
    # a worker's health command: Swarm runs it (a task counts as running once it passes)
    worker = replace(
        _replica(), kind="worker", container_port=None, health_path=None, health_command=("test", "-f", "/ok")
    )
    assert dom.service_body(worker, 2, "berth-overlay").body["TaskTemplate"]["ContainerSpec"]["HealthCheck"] == {
        "Test": ["CMD", "test", "-f", "/ok"],
        "Interval": 1_000_000_000,
        "Timeout": 10_000_000_000,
        "Retries": 3,
        "StartPeriod": 0,
    }


def test_running_tasks_are_read_on_the_overlay_only() -> None:
    def task(state: str, desired: str, net: str, addr: str) -> dict:
        return {
            "NodeID": "n1",
            "DesiredState": desired,
            "Status": {"State": state},
            "NetworksAttachments": [{"Network": {"Spec": {"Name": net}}, "Addresses": [addr]}],
        }

    tasks = [
        task("running", "running", "ov", "10.0.1.5/24"),
        task("running", "shutdown", "ov", "10.0.1.6/24"),
        task("starting", "running", "ov", "10.0.1.7/24"),
        task("running", "running", "ingress", "10.0.0.5/24"),
    ]
    assert dom.running_tasks(tasks, "ov") == [{"node": "n1", "address": "10.0.1.5"}]


@pytest.fixture(scope="module")
def swarm_servers() -> Iterator[list[TestServer]]:
    image = busybox_image()
    with running_servers(3) as servers:
        for server in servers:
            server.load_image(image)
        yield servers


def _target(server: TestServer) -> ssh.SshTarget:
    return server.ssh_target()


def _fetch(manager: TestServer, network: str, address: str) -> str:
    """GET / from a task address, by nc in a container on the overlay (busybox wget fails there)."""
    script = f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {address} 8080'
    return manager.docker("run", "--rm", "--network", network, busybox_image(), "sh", "-c", script, timeout=60)


async def _wait_tasks(
    engine: SwarmEngine, service: str, network: str, count: int, timeout: float, not_on: set[str] = frozenset()
) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        running = dom.running_tasks(await engine.tasks(service), network)
        if len(running) == count and not {t["node"] for t in running} & not_on:
            return running
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(running)} of {count} tasks running after {timeout:.0f}s")
        await asyncio.sleep(0.5)


@pytest.mark.slow
async def test_a_swarm_of_three_runs_a_service_and_survives_a_dead_worker(swarm_servers, tmp_path) -> None:
    manager, *workers = swarm_servers
    pool = ssh.SshPool(tmp_path / "s")
    try:
        engines = [SwarmEngine(await pool.docker_socket(s.name, _target(s))) for s in swarm_servers]
        mgr = engines[0]
        # Berth's body, with 1 s heartbeats (Docker's default: 5 s): the manager marks the dead worker down after
        # a few missed heartbeats, in seconds instead of some twenty
        await mgr.init({**dom.init_body(manager.address), "Spec": {"Dispatcher": {"HeartbeatPeriod": 10**9}}})
        token = await mgr.join_token()
        for server, engine in zip(workers, engines[1:], strict=True):
            await engine.join(dom.join_body(server.address, manager.address, token))
        nodes = await mgr.nodes()
        assert len(nodes) == 3
        with pytest.raises(SwarmError):
            await engines[1].create_service({"Name": "x"})  # a worker cannot manage the swarm
        network = "berth-overlay"
        await mgr.create_network(dom.overlay_body(network))
        svc = dom.service_body(_replica(busybox_image()), 3, network)
        await mgr.create_service(svc.body)
        running = await _wait_tasks(mgr, svc.name, network, 3, timeout=90)
        assert len({t["node"] for t in running}) >= 2  # spread over the nodes
        for task in running:
            assert "hello from swarm" in _fetch(manager, network, task["address"])
        # a worker dies: its tasks are placed on the nodes left, and they answer
        by_node = {n["ID"]: n["Status"]["Addr"] for n in nodes}
        victim = next(w for w in workers if any(by_node.get(t["node"]) == w.address for t in running))
        victim_node = next(node for node, addr in by_node.items() if addr == victim.address)
        victim.crash()
        moved = await _wait_tasks(mgr, svc.name, network, 3, timeout=120, not_on={victim_node})
        for task in moved:
            assert "hello from swarm" in _fetch(manager, network, task["address"])
        await mgr.remove_service(svc.name)
        await mgr.remove_service(svc.name)  # gone already: no error
    finally:
        await pool.close()
