"""Rollouts on a Swarm of three namespace servers, Berth's own sequence (``usecases/swarm_rollout.py``), routed
by the real proxy-sync on the manager's own Traefik (``cmd.route.apply`` with the manager's ``server_id``): a
version switch under load through that Traefik (on the overlay network, routing to task addresses) has zero
errors; a worker dies, Swarm reschedules its tasks, the route follows the running tasks and the application
keeps serving. The readiness check reaches each task on its own node over SSH. Berth delivers the image to
every node (the servers start without it); ``rpc.scheduler.replicas`` shows the tasks with their nodes; the
removal of an application on the Swarm takes its route down on the manager's Traefik, drains, then removes
its Swarm service and every task container."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker

from berth_common import sealing, ssh
from berth_common.bus import Bus
from berth_common.catalogue import (
    ApplicationSpec,
    EnvVar,
    FormSwarm,
    ImageSource,
    RegistryAuth,
    RemoveApplication,
    ReplicasQuery,
    ReplicasReply,
    RolloutOptions,
    ServerChanged,
    StartDeployment,
    WebService,
    WorkerService,
    sealed_key_aad,
)
from berth_common.db import make_engine
from berth_common.db.provision import provision
from berth_proxy_sync.domain import server_proxy as sp
from berth_proxy_sync.settings import ProxySyncSettings
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import names
from berth_scheduler.domain import swarm as bodies
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.domain import swarms as sw
from berth_scheduler.domain.containers import ContainerSpec, container_spec
from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases.rollout.units import RolloutTransactions
from berth_scheduler.usecases.swarm_rollout import RouteNotLive, SwarmRollout, SwarmRolloutFailed
from berth_scheduler.usecases.swarm_routes import BusRoutes
from tests.proxy.support import ProxySync, Traefik
from tests.scheduler.platform import Scheduler
from tests.support import registry as reg
from tests.support.bus_helpers import Collector
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, make_net, remove_net, start_server, stop_server

SECRET = "test-secret"
TEAM = "team1"
SCRIPT = 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www'
HOST = "shop.swarm.test"
APP = "shopswarm"
TERMINAL = ("evt.deployment.succeeded", "evt.deployment.failed", "evt.deployment.cancelled")
NETWORK = "berth"
REG_USER, REG_PASSWORD = "swarm-puller", "pw-swarm-never-shown"


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
    # proxy-sync reaches the API of a Swarm manager's Traefik (on the overlay) at its docker_gwbridge address
    assert sp.on_overlay({"Driver": "overlay"}) and not sp.on_overlay({"Driver": "bridge"}) and not sp.on_overlay(None)
    assert sp.gateway_address(gw, "c-t1") == "172.18.0.4"
    with pytest.raises(sp.ServerProxyError):
        sp.gateway_address(gw, "c-t9")
    # a start that finds no network (an overlay not yet allocated) is tried again; other refusals are not
    assert sp.network_settling(
        "POST /v1.41/containers/berth-traefik/start: Docker answered 404: network wngr not found"
    )
    assert not sp.network_settling("POST /v1.41/containers/berth-traefik/start: Docker answered 500: port in use")


@dataclass
class Cluster:
    servers: list[TestServer]
    pool: ssh.SshPool
    manager: SwarmEngine
    nodes: dict[str, tuple[str, ssh.SshTarget]]  # node id -> (server name, target)


def _target(server: TestServer) -> ssh.SshTarget:
    return server.ssh_target()


@dataclass
class Site:
    """The three servers on their test network, and a registry with users that their engines pull from
    (``served``: at the network's gateway; ``pushed``: the same storage on 127.0.0.1, pushed to by the test)."""

    servers: list[TestServer]
    pushed: reg.Registry
    served: reg.Registry


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    if reg.available() is not None:
        pytest.skip(reg.available() or "")
    busybox_image()  # on the control plane's engine only: Berth delivers it to the servers
    root = tmp_path_factory.mktemp("registry")
    net = make_net()
    servers: list[TestServer] = []
    pushed = reg.Registry(root / "pushed", users={REG_USER: REG_PASSWORD}).start()
    served = reg.Registry(
        root / "served", users={REG_USER: REG_PASSWORD}, bind=net.gateway, storage=root / "pushed" / "storage"
    )
    try:
        served.start()
        for i in range(3):
            servers.append(start_server(net, 2 + i, insecure_registries=(served.host,)))
        yield Site(servers, pushed, served)
    finally:
        for server in servers:
            stop_server(server)
        remove_net(net)
        served.stop()
        pushed.stop()


@pytest.fixture(scope="module")
def three(site: Site) -> list[TestServer]:
    """Three servers without the test image."""
    return site.servers


@pytest.fixture(scope="module")
async def cluster(three: list[TestServer], tmp_path_factory) -> AsyncIterator[Cluster]:
    """The three servers as one Swarm with its overlay network ``berth`` (the manager's Traefik joins it)."""
    manager_server, *workers = three
    pool = ssh.SshPool(tmp_path_factory.mktemp("s"))
    try:
        engines = [SwarmEngine(await pool.docker_socket(s.name, _target(s))) for s in three]
        mgr = engines[0]
        # Berth's body, with 1 s heartbeats (Docker's default: 5 s): the manager marks a dead worker down after a
        # few missed heartbeats, in seconds instead of some twenty
        await mgr.init({**bodies.init_body(manager_server.address), "Spec": {"Dispatcher": {"HeartbeatPeriod": 10**9}}})
        token = await mgr.join_token()
        for server, engine in zip(workers, engines[1:], strict=True):
            await engine.join(bodies.join_body(server.address, manager_server.address, token))
        await mgr.create_network(bodies.overlay_body(NETWORK))
        by_address = {s.address: s for s in three}
        nodes = {n["ID"]: by_address[sw.node_address(n)] for n in await mgr.nodes()}
        yield Cluster(three, pool, mgr, {node: (s.name, _target(s)) for node, s in nodes.items()})
    finally:
        await pool.close()


def _changed(server: TestServer, server_id: str) -> ServerChanged:
    return ServerChanged(
        server_id=server_id,
        team_id=TEAM,
        name=f"swarm-{server_id[:20]}",
        host=server.address,
        private_key=sealing.seal(server.private_key_pem, sealed_key_aad(server_id)),
        host_key=server.host_key.export_public_key("openssh").decode().strip(),
        state="ready",
        revision=1,
    )


@dataclass
class Platform:
    """proxy-sync (routes on the manager's own Traefik, which it runs there) and the scheduler (settles the
    route answers), in-process; the route switch of the Swarm rollouts goes through them."""

    routes: BusRoutes
    manager_id: str
    dynamic: Path  # the manager's Traefik dynamic folder, as proxy-sync writes it
    server_ids: list[str]  # the three servers, manager first, as the directory has them
    api: Bus  # publishes as the api does
    scheduler: Scheduler  # may be stopped and started again (a restart)


@pytest.fixture
async def platform(cluster: Cluster, nats_server, database, tmp_root: Path, unique: str) -> AsyncIterator[Platform]:
    async with platform_of(cluster, nats_server, database, tmp_root, unique) as made:
        yield made


@pytest.fixture(scope="module")
async def shared(
    cluster: Cluster, module_nats_server, module_database, tmp_root: Path
) -> AsyncIterator[tuple[Platform, str]]:
    """The platform and its bus's URL, shared by this module's tests (its applications are each test's own;
    the scheduler restarted by one test serves the next as it would after a restart): made once, as its
    proxy-sync's Traefik on the manager is."""
    unique = uuid.uuid4().hex[:8]
    async with platform_of(cluster, module_nats_server, module_database, tmp_root, unique) as made:
        yield made, module_nats_server.url


@contextlib.asynccontextmanager
async def platform_of(
    cluster: Cluster, nats_server, database, tmp_root: Path, unique: str, announced: int = 3
) -> AsyncIterator[Platform]:
    """The platform, told of the first ``announced`` servers of the cluster (manager first): the others are
    nodes Berth does not reach."""
    urls = await provision(database, SECRET, ("proxy-sync", "scheduler"))
    local = Traefik(tmp_root / f"local-traefik-{unique}")
    local.root.mkdir()
    local.start()
    remote_root = tmp_root / f"servers-{unique}"
    proxy = await ProxySync(
        ProxySyncSettings(
            nats_url=nats_server.url,
            database_url=urls["proxy-sync"],
            http_port=0,
            traefik_dynamic_dir=local.dynamic_dir,
            traefik_api_url=local.api_url,
            route_live_timeout_s=10.0,
            server_traefik_root=str(remote_root),
            server_connect_timeout_s=5.0,
        )
    ).start()
    scheduler = await Scheduler(
        SchedulerSettings(nats_url=nats_server.url, database_url=urls["scheduler"], secret_key=SECRET, http_port=0)
    ).start()
    api = Bus("api", nats_server.url)
    await api.connect()
    bus = Bus("scheduler", nats_server.url)
    await bus.connect()
    engine = make_engine(urls["scheduler"], "scheduler")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    manager_id = f"mgr{unique}"
    server_ids = [manager_id, f"wa{unique}", f"wb{unique}"]
    try:
        await _migrated(sessions)
        server_ids = server_ids[:announced]
        for server, server_id in zip(cluster.servers, server_ids, strict=False):
            await api.publish(_changed(server, server_id))
        routes = BusRoutes(RolloutTransactions(bus, sessions), sessions, "swarm-warmup", "a1", timeout_s=120)
        deadline = time.monotonic() + 180
        while True:  # proxy-sync learns the server from the event, then makes its Traefik there on first use
            try:
                await routes.apply(manager_id, "warmup", ["warmup.swarm.test"], ["http://127.0.0.1:9"])
                break
            except RouteNotLive as exc:
                assert "not known" in str(exc) and time.monotonic() < deadline, exc
                await asyncio.sleep(0.5)
        yield Platform(routes, manager_id, remote_root / manager_id / "dynamic", server_ids, api, scheduler)
    finally:
        await engine.dispose()
        await bus.close()
        await api.close()
        await scheduler.stop()
        await proxy.stop()
        local.stop()
        cluster.servers[0].docker("rm", "-f", "berth-traefik", "berth-traefik-net")


async def _migrated(sessions: async_sessionmaker, timeout: float = 60) -> None:
    """Wait until the scheduler started in the background made its tables."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with sessions() as s:
                await s.execute(sa.text("SELECT 1 FROM route_ops LIMIT 1"))
            return
        except sa.exc.ProgrammingError:
            assert time.monotonic() < deadline, "the scheduler did not migrate its schema"
            await asyncio.sleep(0.2)


@dataclass
class Load:
    """Requests through the manager's Traefik, a few at a time, until stopped: what each answered."""

    url: str
    host: str = HOST
    ok: int = 0
    bodies: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    times_ok: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event, workers: int = 4) -> None:
        async def worker() -> None:
            async with httpx.AsyncClient(timeout=3, trust_env=False) as client:
                while not stop.is_set():
                    try:
                        r = await client.get(self.url, headers={"Host": self.host})
                        if r.status_code == 200:
                            self.ok += 1
                            self.bodies[r.text] = self.bodies.get(r.text, 0) + 1
                            self.times_ok.append(time.monotonic())
                        else:
                            self.errors.append(f"{r.status_code}")
                    except httpx.HTTPError as exc:
                        self.errors.append(type(exc).__name__)
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(worker() for _ in range(workers)))


async def _served(url: str, body: str, timeout: float = 20, host: str = HOST) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while True:
            try:
                r = await client.get(url, headers={"Host": host})
                if r.status_code == 200 and r.text == body:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{body!r} not served through the manager's Traefik"
            await asyncio.sleep(0.1)


async def _deployed(nats_url: str, api: Bus, cmd: StartDeployment, timeout: float = 180) -> dict:
    """Send ``cmd.deployment.start`` as the api does; the deployment's last event."""
    events = await Collector().start(nats_url, "evt.deployment.>")
    try:
        await api.publish(cmd)
        deadline = time.monotonic() + timeout
        while True:
            for body, _ in events.items:
                if body["data"].get("deployment_id") == cmd.deployment_id and body["type"] in TERMINAL:
                    return body
            assert time.monotonic() < deadline, [b["data"].get("step") for b, _ in events.items]
            await asyncio.sleep(0.2)
    finally:
        await events.close()


def _start(
    deployment_id: str,
    body: str,
    manager_id: str,
    app: str = APP,
    host: str = HOST,
    name: str = "shop",
    source: ImageSource | None = None,
    worker: bool = False,
) -> StartDeployment:
    jobs = WorkerService(name="jobs", replicas=2, command=["sleep", "3600"], servers=[manager_id])
    spec = ApplicationSpec(
        name=name,
        source=source or ImageSource(image=busybox_image()),
        env=[EnvVar(name="BODY", value=body)],
        services=[
            WebService(
                name="web", port=8080, replicas=3, command=["sh", "-c", SCRIPT], hosts=[host],
                servers=[manager_id],
            ),
            *([jobs] if worker else []),
        ],
        stop_timeout_s=2,
    )  # fmt: skip
    return StartDeployment(
        deployment_id=deployment_id,
        application_id=app,
        team_id=TEAM,
        spec=spec,
        options=RolloutOptions(drain_grace_s=1),
    )


def _deployed_version(cmd: StartDeployment) -> dom.SwarmVersion:
    """The Swarm version the scheduler runs for ``cmd`` (as ``rollout/swarm_step.py`` makes it)."""
    svc = cmd.spec.services[0]
    assert isinstance(svc, WebService)
    replica = container_spec(APP, cmd.deployment_id, cmd.spec, svc, 1, busybox_image(), svc.port, TEAM)
    return dom.SwarmVersion(APP, replica, svc.replicas, names.route_id(APP, "web"), (HOST,), NETWORK)


def _upstreams_in(route_file: str) -> list[str]:
    """The upstream URLs of a route file proxy-sync wrote (JSON or YAML: every ``url`` value)."""
    return sorted(re.findall(r'"?url"?:\s*"?(http://[0-9.]+:[0-9]+)', route_file))


_ATTEMPTS = itertools.count(1)


async def _formed(platform: Platform, nats_url: str) -> dict:
    """``cmd.swarm.form`` as the api sends it (a new attempt each time: the answer's id is the attempt's, so
    a platform shared by tests answers each); the scheduler's answer."""
    answers = await Collector().start(nats_url, "evt.swarm.>")
    try:
        command = FormSwarm(
            swarm_id="swarm1", team_id=TEAM, attempt=next(_ATTEMPTS), manager_server_id=platform.server_ids[0],
            worker_server_ids=platform.server_ids[1:],
        )  # fmt: skip
        await platform.api.publish(command)
        deadline = time.monotonic() + 60
        while not answers.items:
            assert time.monotonic() < deadline, "no answer to cmd.swarm.form"
            await asyncio.sleep(0.2)
    finally:
        await answers.close()
    return answers.items[0][0]


GONE_APP = "shopgone"
GONE_HOST = "gone.swarm.test"


def _has_image(server: TestServer, image: str) -> bool:
    return image in server.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split()


def _app_containers(server: TestServer, app: str) -> list[str]:
    return server.docker("ps", "-a", "--filter", f"label=berth.app={app}", "--format", "{{.Names}}").split()


@pytest.mark.slow
async def test_an_application_on_the_swarm_gets_its_image_shows_its_tasks_and_is_removed_after_a_drain(
    cluster: Cluster, shared: tuple[Platform, str]
) -> None:
    """Runs before the test that kills a worker. The servers start without the image: the scheduler delivers
    it to every node before it creates the service. ``rpc.scheduler.replicas`` shows the three tasks with
    their nodes. ``cmd.application.remove``: the route on the manager's Traefik goes first (confirmed by
    proxy-sync), requests drain (the scheduler restarts meanwhile and resumes), then the Swarm service and
    every task container go; evt.application.removed counts them. No request that reached the route failed."""
    platform, nats_url = shared
    manager = cluster.servers[0]
    image = busybox_image()
    assert not any(_has_image(s, image) for s in cluster.servers), "the servers must start without the image"
    answer = await _formed(platform, nats_url)
    assert answer["type"] == "evt.swarm.formed", answer

    url = f"http://{manager.address}/"
    cmd = _start("dep-gone", "to be removed", platform.manager_id, app=GONE_APP, host=GONE_HOST, name="gone")
    done = await _deployed(nats_url, platform.api, cmd)
    assert done["type"] == "evt.deployment.succeeded", done
    assert all(_has_image(s, image) for s in cluster.servers)  # delivered by Berth to every node
    await _served(url, "to be removed", host=GONE_HOST)
    family = {"berth.app": GONE_APP}
    (service,) = [s["Spec"]["Name"] for s in await cluster.manager.services(family)]
    tasks = dom.running(await cluster.manager.tasks(service), NETWORK)
    assert len(tasks) == 3

    # the replicas are the Swarm tasks: node (the server), state, readiness, address
    reply = await platform.api.request("scheduler", "replicas", ReplicasQuery(application_id=GONE_APP), ReplicasReply)
    node_server = {node: platform.server_ids[cluster.servers.index(s)] for node, s in _node_servers(cluster).items()}
    assert reply.live_deployment_id == "dep-gone"
    shown = sorted(
        ((r.node, r.state, r.health, r.upstream, r.deployment_id, r.service) for r in reply.replicas), key=repr
    )
    expected = [
        (node_server[t.node_id], "running", "ready", f"http://{t.address}:8080", "dep-gone", "web") for t in tasks
    ]
    assert shown == sorted(expected, key=repr), [r.model_dump() for r in reply.replicas]
    assert sorted(r.replica for r in reply.replicas) == [1, 2, 3]

    # the removal, under load: the route goes first, the service only after the drain
    route_file = platform.dynamic / f"{names.route_id(GONE_APP, 'web')}.yml"
    assert route_file.exists()
    seen: dict[str, float] = {}

    async def watch(stop: asyncio.Event) -> None:
        while not stop.is_set():
            if "route" not in seen and not route_file.exists():
                seen["route"] = time.monotonic()
            if "service" not in seen and not await cluster.manager.services(family):
                seen["service"] = time.monotonic()
            await asyncio.sleep(0.1)

    task_containers = sorted(c for s in cluster.servers for c in _app_containers(s, GONE_APP))
    assert len(task_containers) >= 3
    events = await Collector().start(nats_url, "evt.application.>")
    stop = asyncio.Event()
    load = Load(url, host=GONE_HOST)
    running = [asyncio.create_task(load.run(stop)), asyncio.create_task(watch(stop))]
    try:
        await asyncio.sleep(1)
        await platform.api.publish(RemoveApplication(application_id=GONE_APP, team_id=TEAM, drain_grace_s=3))
        deadline = time.monotonic() + 120
        restarted = False
        while not any(
            b["type"] in ("evt.application.removed", "evt.application.removal_failed") for b, _ in events.items
        ):
            assert time.monotonic() < deadline, [b["type"] for b, _ in events.items]
            phases = [b["data"].get("phase") for b, _ in events.items]
            if not restarted and "draining" in phases:  # the scheduler restarts mid-drain; the removal resumes
                await platform.scheduler.stop()
                await platform.scheduler.start()
                restarted = True
            await asyncio.sleep(0.2)
        assert restarted
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*running)
        await events.close()
    (removed,) = [
        b for b, _ in events.items if b["type"] in ("evt.application.removed", "evt.application.removal_failed")
    ]
    assert removed["type"] == "evt.application.removed", removed
    assert {k: removed["data"][k] for k in ("routes_removed", "containers_removed")} == {
        "routes_removed": 1,
        "containers_removed": len(task_containers),
    }
    assert not route_file.exists() and await cluster.manager.services(family) == []
    # the drain grace lies between the route and the service (less what one watch pass may have noticed late)
    assert seen["service"] - seen["route"] >= 2.8, seen
    assert load.bodies == {"to be removed": load.ok} and load.ok > 0
    assert set(load.errors) <= {"404"}, load.errors[:10]  # after the route went: not routed, never a 502
    deadline = time.monotonic() + 60
    while any(_app_containers(s, GONE_APP) for s in cluster.servers):  # Swarm's task containers, on every node
        assert time.monotonic() < deadline, {s.name: _app_containers(s, GONE_APP) for s in cluster.servers}
        await asyncio.sleep(0.25)
    reply = await platform.api.request("scheduler", "replicas", ReplicasQuery(application_id=GONE_APP), ReplicasReply)
    assert (reply.live_deployment_id, reply.replicas) == (None, [])


def _node_servers(cluster: Cluster) -> dict[str, TestServer]:
    by_name = {s.name: s for s in cluster.servers}
    return {node: by_name[name] for node, (name, _) in cluster.nodes.items()}


@pytest.mark.slow
async def test_a_registry_image_is_pulled_by_the_nodes_with_the_applications_credentials(
    cluster: Cluster, site: Site, shared: tuple[Platform, str]
) -> None:
    """A registry that wants credentials: an anonymous pull on a node is refused; the service is created with
    the application's credentials (``X-Registry-Auth``), so every node that runs a task pulls the image."""
    platform, nats_url = shared
    await reg.push(busybox_image(), site.pushed, "team/shopreg", "1")
    image = f"{site.served.host}/team/shopreg:1"
    manager = cluster.servers[0]
    with pytest.raises(RuntimeError, match=r"no basic auth credentials|unauthorized|authentication required"):
        manager.docker("pull", image)
    answer = await _formed(platform, nats_url)
    assert answer["type"] == "evt.swarm.formed", answer
    auth = RegistryAuth(registry=site.served.host, username=REG_USER, password=REG_PASSWORD)
    source = ImageSource(image=image, auth=auth)
    cmd = _start("dep-reg", "pulled", platform.manager_id, app="shopreg", host="reg.swarm.test", source=source)
    done = await _deployed(nats_url, platform.api, cmd)
    assert done["type"] == "evt.deployment.succeeded", done
    await _served(f"http://{manager.address}/", "pulled", host="reg.swarm.test")
    (service,) = await cluster.manager.services({"berth.app": "shopreg"})
    nodes = _node_servers(cluster)
    runs_on = {
        nodes[t.node_id].name for t in dom.running(await cluster.manager.tasks(service["Spec"]["Name"]), NETWORK)
    }
    assert runs_on and all(_has_image(s, image) for s in cluster.servers if s.name in runs_on)
    assert REG_PASSWORD not in str(service)  # the engine keeps the credentials to itself
    # removed as a user removes it: the scheduler, which the module's next tests share, keeps no live
    # version whose Swarm service is gone
    events = await Collector().start(nats_url, "evt.application.>")
    try:
        await platform.api.publish(RemoveApplication(application_id="shopreg", team_id=TEAM, drain_grace_s=0))
        deadline = time.monotonic() + 60
        while not any(b["type"] == "evt.application.removed" for b, _ in events.items):
            assert time.monotonic() < deadline, [b["type"] for b, _ in events.items]
            await asyncio.sleep(0.2)
    finally:
        await events.close()
    assert await cluster.manager.services({"berth.app": "shopreg"}) == []


@pytest.mark.slow
async def test_deployments_on_the_swarm_switch_with_zero_errors_and_routes_follow_a_dead_worker(
    cluster: Cluster, shared: tuple[Platform, str]
) -> None:
    """The scheduler's path: the Swarm formed by ``cmd.swarm.form`` (its servers already in it: formed again,
    the same Swarm); ``cmd.deployment.start`` of a web service placed on its manager, then a second version
    under load through the manager's Traefik: zero errors. Then a worker dies."""
    platform, nats_url = shared
    manager = cluster.servers[0]
    answer = await _formed(platform, nats_url)
    assert answer["type"] == "evt.swarm.formed", answer
    assert answer["data"]["cluster_id"] == (await cluster.manager.info())["Swarm"]["Cluster"]["ID"]
    assert {n["server_id"] for n in answer["data"]["nodes"]} == set(platform.server_ids)

    url = f"http://{manager.address}/"
    first = await _deployed(nats_url, platform.api, _start("dep-one", "deployed one", platform.manager_id, worker=True))
    assert first["type"] == "evt.deployment.succeeded", first
    await _served(url, "deployed one")
    family = {"berth.app": APP, "berth.service": "web"}
    (one,) = [s["Spec"]["Name"] for s in await cluster.manager.services(family)]
    assert one == _deployed_version(_start("dep-one", "", platform.manager_id)).service.name
    assert len(dom.running(await cluster.manager.tasks(one), NETWORK)) == 3
    route_file = (platform.dynamic / f"{names.route_id(APP, 'web')}.yml").read_text()
    for task in dom.running(await cluster.manager.tasks(one), NETWORK):  # proxy-sync routes to the task addresses
        assert f"http://{task.address}:8080" in route_file

    # the next version under load: zero errors, the old service removed
    stop = asyncio.Event()
    load = Load(url)
    running = asyncio.create_task(load.run(stop))
    await asyncio.sleep(1)
    cmd = _start("dep-two", "deployed two", platform.manager_id, worker=True)
    second = await _deployed(nats_url, platform.api, cmd)
    await asyncio.sleep(1)
    stop.set()
    await running
    assert second["type"] == "evt.deployment.succeeded", second
    assert load.errors == [], load.errors[:10]
    assert set(load.bodies) == {"deployed one", "deployed two"}, load.bodies
    version = _deployed_version(cmd)
    assert [s["Spec"]["Name"] for s in await cluster.manager.services(family)] == [version.service.name]
    # the worker service of each version runs as a Swarm service too, without a route: the new one replaced
    # the old one once its two tasks ran
    (jobs,) = [s["Spec"]["Name"] for s in await cluster.manager.services({"berth.app": APP, "berth.service": "jobs"})]
    assert jobs == names.container_name("shop", "jobs", "dep-two", 1).rsplit("-", 1)[0]
    assert len(dom.running(await cluster.manager.tasks(jobs), NETWORK)) == 2
    assert not (platform.dynamic / f"{names.route_id(APP, 'jobs')}.yml").exists()

    # the same version again (a scheduler restart halfway): the same service, the same route
    routes = BusRoutes(platform.routes.units, platform.routes.sessionmaker, "swarm-again", APP, timeout_s=60)
    probe = NodeProbe(cluster.pool, lambda: cluster.nodes, timeout_s=2)
    rollout = SwarmRollout(cluster.manager, platform.manager_id, routes, probe, drain_s=1, interval_s=0.3)
    serving = await rollout.run(version)
    assert sorted(serving) == sorted(
        dom.upstreams(dom.running(await cluster.manager.tasks(version.service.name), NETWORK), 8080)
    )

    # a version whose tasks never pass the check: not routed, removed; the deployed one keeps serving
    with pytest.raises(SwarmRolloutFailed, match="tasks of shop-web-dbad ready"):
        await SwarmRollout(cluster.manager, platform.manager_id, routes, probe, ready_timeout_s=5, interval_s=0.3).run(
            _version("dbad", "bad", replicas=2, health="/missing")
        )
    assert await cluster.manager.service("shop-web-dbad") is None
    await _served(url, "deployed two")

    # a worker dies: Swarm reschedules its tasks, the scheduler's route follows the running tasks, it keeps serving
    tasks = dom.running(await cluster.manager.tasks(version.service.name), NETWORK)
    names_of = {node: name for node, (name, _) in cluster.nodes.items()}
    victim_name = next(names_of[t.node_id] for t in tasks if names_of[t.node_id] != manager.name)
    victim = next(s for s in cluster.servers if s.name == victim_name)
    victim_node = next(node for node, name in names_of.items() if name == victim_name)
    route_file = platform.dynamic / f"{version.route_id}.yml"
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
            routed = _upstreams_in(route_file.read_text())
            if routed == sorted(dom.upstreams(moved, 8080)):
                break
        assert time.monotonic() < deadline, f"tasks not rescheduled and routed: {moved}"
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    stop.set()
    await running
    assert load.bodies == {"deployed two": load.ok}
    # still serving all along: an answer in every 3-second window after the crash
    assert load.times_ok
    window, t = 3.0, killed_at
    while t + window < load.times_ok[-1]:
        assert any(t <= x < t + window for x in load.times_ok), f"nothing served {t - killed_at:.0f}s after the crash"
        t += window
    await _served(url, "deployed two")


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
