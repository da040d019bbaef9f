"""Placement on two servers end to end: the real scheduler and proxy-sync, two namespace test servers (each
its own dockerd, sshd and Traefik made by proxy-sync), an image application spread over both. Load goes
through both servers' Traefiks during five redeploys (the scheduler restarted in the middle of one): zero
errors, each server serving the new version after each. Then one server's engine dies mid-deploy: the deployment ends cleanly (failed at its deadline,
its new replicas removed where the engine answers), and the other server keeps serving the old version
without an error."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from berth_common.bus import Bus
from berth_common.catalogue import ReplicasQuery, ReplicasReply, ServerChanged
from berth_common.db import make_engine
from berth_common.db.provision import provision
from berth_proxy_sync.settings import ProxySyncSettings
from berth_scheduler.settings import SchedulerSettings
from tests.proxy.support import ProxySync
from tests.scheduler.platform import Platform, Scheduler, web_app
from tests.support.images import busybox_image, traefik_image
from tests.support.testservers import TestServer, load_images, running_servers, server_changed

pytestmark = pytest.mark.slow
HOST = "shop.placed.test"
DEADLINE_S = 10  # the deployment whose server's engine dies fails at it (it needs 2-5 s where the engines answer)


@pytest.fixture(scope="module")
def servers() -> Iterator[list[TestServer]]:
    """Two servers, each with Berth's Traefik image already (proxy-sync's import of it over SSH is not what
    the tests here are about: ``tests.support.images.traefik_image``)."""
    busybox_image()
    with running_servers(2) as two:
        load_images(two, traefik_image())
        yield two


def _changed(server: TestServer, server_id: str) -> ServerChanged:
    return server_changed(server, server_id, team_id="team-1", name=f"edge-{server_id}")


@dataclass
class ServerLoad:
    """Steady GETs and POSTs through one server's Traefik (its address, port 80), from a thread."""

    address: str
    results: list[tuple[int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _one(self, i: int) -> tuple[int, str]:
        conn = http.client.HTTPConnection(self.address, 80, timeout=10)
        try:
            if i % 2:
                conn.request("POST", "/cgi-bin/echo", body=b"x" * 512, headers={"Host": HOST})
            else:
                conn.request("GET", "/", headers={"Host": HOST})
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace").strip()
        except Exception as exc:
            return -1, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def _loop(self) -> None:
        i = 0
        while not self._stop.is_set():
            self.results.append(self._one(i))
            i += 1
            time.sleep(0.02)

    def start(self) -> ServerLoad:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[tuple[int, str]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
        return self.results

    @property
    def errors(self) -> list[tuple[int, str]]:
        return [r for r in self.results if not 200 <= r[0] < 300]


def _get(address: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, 80, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": HOST})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace").strip()
    except Exception as exc:
        return -1, str(exc)
    finally:
        conn.close()


async def _served(address: str, content: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(_get, address)
        if got == (200, content):
            return
        assert time.monotonic() < deadline, f"{address}: {got}, expected {content}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def placed(
    servers, nats_server, database, traefik_spares, tmp_root, unique
) -> AsyncIterator[tuple[Platform, list[str]]]:
    urls = await provision(database, "test-secret", ("scheduler", "proxy-sync"))
    traefik = traefik_spares.take()  # started while the test before ran
    proxy = ProxySync(
        ProxySyncSettings(
            nats_url=nats_server.url,
            database_url=urls["proxy-sync"],
            http_port=0,
            traefik_dynamic_dir=traefik.dynamic_dir,
            traefik_api_url=traefik.api_url,
            server_traefik_root=str(tmp_root / f"servers-{unique}"),
            server_connect_timeout_s=3.0,
            server_setup_timeout_s=60.0,
        )
    )
    scheduler = Scheduler(
        SchedulerSettings(
            nats_url=nats_server.url,
            database_url=urls["scheduler"],
            secret_key="test-secret",
            http_port=0,
            drain_grace_s=1.5,
            readiness_timeout_s=25,
            route_timeout_s=60,
            readiness_interval_s=0.1,
            ssh_timeout_s=3,
        )
    )
    platform = await Platform(nats_server.url, traefik, scheduler, proxy).start()
    ids = [f"s{unique}a", f"s{unique}b"]
    api = Bus("api", nats_server.url)
    await api.connect()
    engine = make_engine(urls["scheduler"], "scheduler")
    try:
        for server, sid in zip(servers, ids, strict=True):
            await api.publish(_changed(server, sid))
        deadline = time.monotonic() + 20
        while True:  # the scheduler keeps its directory from the events
            known = 0
            with contextlib.suppress(sa.exc.ProgrammingError):  # its migrations may still be running
                async with engine.connect() as conn:
                    known = (await conn.execute(sa.text("SELECT count(*) FROM scheduler.servers"))).scalar()
            if known == 2:
                break
            assert time.monotonic() < deadline, "the scheduler did not record the servers"
            await asyncio.sleep(0.1)
        yield platform, ids
    finally:
        await engine.dispose()
        await api.close()
        await platform.close()
        traefik.kill()
        for server in servers:
            with contextlib.suppress(Exception):
                names = server.docker("ps", "-aq", "--filter", "label=berth.managed=true").split()
                if names:
                    server.docker("rm", "-f", *names)


def _spec(content: str, servers: list[str]) -> dict:
    spec = web_app(busybox_image(), content, HOST, replicas=2)
    spec["services"][0]["servers"] = servers
    return spec


async def test_an_app_on_two_servers_redeploys_under_load_and_survives_a_dead_engine(placed, servers):
    platform, ids = placed
    app_id = uuid.uuid4().hex
    first = await platform.deploy(app_id, _spec("v0", ids))
    done = await platform.wait(first, timeout=240)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(first))
    upstreams = sorted(r["upstream"] for r in done["data"]["replicas"])
    assert all(u.startswith("http://berth-shop-web-") and u.endswith(":8080") for u in upstreams), upstreams
    for server in servers:
        await _served(server.address, "v0")
    assert platform.api is not None  # the application's replicas, as the api asks for them: one on each server
    query = ReplicasQuery(application_id=app_id)
    reply = await platform.api.request("scheduler", "replicas", query, ReplicasReply, timeout=20)
    assert sorted((r.state, r.health, r.upstream) for r in reply.replicas) == [
        ("running", "ready", u) for u in upstreams
    ]

    loads = [ServerLoad(s.address).start() for s in servers]
    try:
        for n in range(1, 6):
            dep = await platform.deploy(app_id, _spec(f"v{n}", ids))
            if n == 3:  # the scheduler restarts mid-deploy: it resumes from the persisted state on both servers
                await platform.wait(dep, ("evt.deployment.progressed",), timeout=60, step="starting replicas")
                await platform.scheduler.stop()
                assert not platform.of(dep, "evt.deployment.succeeded"), "it ended before the restart"
                await platform.scheduler.start()
            done = await platform.wait(dep, timeout=120)
            assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(dep))
            for server in servers:
                await _served(server.address, f"v{n}")
    finally:
        results = [load.stop() for load in loads]
    for load, got in zip(loads, results, strict=True):
        assert len(got) > 50, f"{load.address}: only {len(got)} requests"
        assert load.errors == [], f"{load.address}: {load.errors[:5]}"
        served = [body.split()[0] for status, body in got if status == 200 and body]
        assert served[-1] == "v5" and set(served) <= {f"v{n}" for n in range(6)}

    # one server's engine dies mid-deploy: the deployment ends cleanly; the other server keeps serving v5
    healthy, dying = servers
    load = ServerLoad(healthy.address).start()
    try:  # its deadline (starting and verifying) is its own, shorter than the 25 s the redeploys above had
        dep = await platform.deploy(app_id, _spec("v6", ids), readiness_timeout_s=DEADLINE_S)
        await platform.wait(dep, ("evt.deployment.progressed",), timeout=60, step="starting replicas")
        await asyncio.to_thread(dying.stop_dockerd)
        done = await platform.wait(dep, timeout=180)
    finally:
        results = load.stop()
    # the engine does not come back here, so the deployment cannot resume: it fails at its deadline
    assert done["type"] == "evt.deployment.failed", done
    assert done["data"]["failed_in"] in ("starting", "verifying", "routing"), done
    await _served(healthy.address, "v5")
    assert not [c for c in healthy.docker("ps", "-a", "--format", "{{.Names}}").split() if dep[:8] in c]
    assert len(results) > 20 and load.errors == [], load.errors[:5]
