"""A server the server watcher reported unreachable is skipped at once by the deployments leaving it, end to
end: the real scheduler, proxy-sync and metrics service (the server watcher: ``evt.server.unreachable`` and
``evt.server.back``), one namespace test server whose sshd and engine are stopped (SIGSTOP: connections
hang, as to a machine that is gone).

An app on the server moves to ``local`` while the server hangs: the deployment succeeds with the usual notes
(its route and old containers there skipped, their records kept) and does not wait for the SSH timeout,
measured by the deployment's own events. Once the server is back, the next deployment removes what the
move left there."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from berth_common.bus import Bus
from berth_common.db import make_engine
from berth_common.db.provision import provision
from berth_proxy_sync.settings import ProxySyncSettings
from berth_scheduler.settings import SchedulerSettings
from tests.metrics.service import metrics_service
from tests.proxy.support import ProxySync
from tests.scheduler.platform import Platform, Scheduler, web_app
from tests.support.images import DOCKER, busybox_image, traefik_image
from tests.support.testservers import TestServer, _signal_in, load_images, running_servers, server_changed

pytestmark = pytest.mark.slow

SSH_TIMEOUT_S = 6.0  # with the server watcher: a deployment must not wait for it
# without the watcher a deployment asks the hanging server and waits this out (the product's limit on
# connecting to a server and on each command there): the shorter, the shorter those tests
HANG_SSH_TIMEOUT_S = 3.0
PRUNE_S = 3.0  # the image pruning's time on one server
# the watcher's limit on one collection from the server (5 s by default): a hanging server is reported after
# two collections that waited it out; a server that answers does so in well under a second
STATS_S = 3.0


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    """The server, with Berth's Traefik image already (proxy-sync's import of it over SSH is checked in
    test_remote_routes.py)."""
    busybox_image()
    with running_servers(1) as (one,):
        load_images([one], traefik_image())
        yield one


@pytest.fixture
async def rig(
    request, server, nats_server, database, traefik_spares, tmp_root, unique
) -> AsyncIterator[dict[str, Any]]:
    """The platform; with the metrics service as the server watcher (and an SSH timeout of SSH_TIMEOUT_S) unless
    the test's parameter says no (then HANG_SSH_TIMEOUT_S)."""
    watched = getattr(request, "param", True)
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
            drain_grace_s=0.5,
            readiness_timeout_s=30,
            route_timeout_s=60,
            readiness_interval_s=0.1,
            ssh_timeout_s=SSH_TIMEOUT_S if watched else HANG_SSH_TIMEOUT_S,
            prune_server_timeout_s=PRUNE_S,
        )
    )
    platform = await Platform(nats_server.url, traefik, scheduler, proxy).start()
    sid = f"s{unique}"
    api = Bus("api", nats_server.url)
    await api.connect()
    engine = make_engine(urls["scheduler"], "scheduler")
    watcher = (
        metrics_service(
            nats_server.url,
            database,
            metrics_server_down_after=2,
            metrics_ssh_timeout_s=2.0,
            metrics_stats_timeout_s=STATS_S,
            secret_key="test-secret",
        )
        if watched
        else contextlib.nullcontext(None)
    )
    try:
        async with watcher as metrics:
            await api.publish(server_changed(server, sid, team_id="team-1", name="edge-1"))
            await _until(engine, "SELECT count(*) FROM scheduler.servers", 1)
            yield {"platform": platform, "sid": sid, "metrics": metrics, "engine": engine}
    finally:
        for name in ("sshd", "dockerd"):  # going on, so that the server stops cleanly
            if name in server.pids:
                _signal_in(server.name, server.pids[name], signal.SIGCONT)
        await engine.dispose()
        await api.close()
        await platform.close()
        traefik.kill()
        with contextlib.suppress(Exception):
            names = server.docker("ps", "-aq", "--filter", "label=berth.managed=true").split()
            if names:
                server.docker("rm", "-f", *names)


async def _until(engine: Any, query: str, wanted: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = -1
        with contextlib.suppress(sa.exc.ProgrammingError):  # its migrations may still be running
            async with engine.connect() as conn:
                found = (await conn.execute(sa.text(query))).scalar()
        if found == wanted:
            return
        assert time.monotonic() < deadline, f"{query}: {found}, not {wanted}"
        await asyncio.sleep(0.1)


async def _pruned(engine: Any, app_id: str) -> None:
    """The image pruning due after the application's last success is done (on every server it asks): its
    record, written with the success, is gone; then the test may make a server hang without that pruning
    meeting it."""
    await _until(engine, f"SELECT count(*) FROM scheduler.prunes_due WHERE application_id = '{app_id}'", 0, 60)


def _seconds(platform: Platform, dep: str) -> float:
    """From the deployment's admission (its first step after ``queued``: the application's previous work is
    done) to its end, by the deployment's own events' times."""
    events = [e for e in platform.of(dep) if e["data"].get("state") != "queued"]
    times = [datetime.fromisoformat(e["time"]) for e in events]
    return (max(times) - min(times)).total_seconds()


def _lines(platform: Platform, dep: str) -> list[str]:
    return [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == dep]


@pytest.fixture
def app_id() -> Iterator[str]:
    """A fresh application id; its containers on this machine's engine (where it moves) are removed after."""
    app = f"app-{uuid.uuid4().hex[:10]}"
    yield app
    ids = subprocess.run(
        [DOCKER, "ps", "-aq", "--filter", f"label=berth.app={app}"], capture_output=True, text=True
    ).stdout.split()
    if ids:
        subprocess.run([DOCKER, "rm", "-f", *ids], capture_output=True, check=False)


def _spec(content: str, servers: list[str], host: str) -> dict[str, Any]:
    spec = web_app(busybox_image(), content, host)
    spec["services"][0]["servers"] = servers
    return spec


async def test_a_server_known_unreachable_is_skipped_without_waiting(rig, server, app_id) -> None:
    platform, sid, metrics, engine = rig["platform"], rig["sid"], rig["metrics"], rig["engine"]
    host = f"dead-{uuid.uuid4().hex[:8]}.localhost"
    first = await platform.deploy(app_id, _spec("v1", [sid], host))
    done = await platform.wait(first, timeout=120)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(first))
    assert server.docker("ps", "-q", "--filter", f"label=berth.app={app_id}").split()

    await _pruned(engine, app_id)
    # the server hangs: its sshd and its engine stopped; the watcher reports it
    for name in ("sshd", "dockerd"):
        _signal_in(server.name, server.pids[name], signal.SIGSTOP)
    await _until(engine, f"SELECT count(*) FROM scheduler.servers_down WHERE server_id = '{sid}'", 1, 60)
    (reported,) = [e for e in metrics.events if e["type"] == "evt.server.unreachable"]
    assert reported["data"]["server_id"] == sid

    moved = await platform.deploy(app_id, _spec("v2", ["local"], host))
    done = await platform.wait(moved, timeout=120)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(moved))
    took = _seconds(platform, moved)
    print(f"\nmoved off the hanging server in {took:.2f}s (SSH timeout {SSH_TIMEOUT_S:g}s)")
    timeline = [(e["time"][11:23], e["data"].get("step"), e["data"].get("detail")) for e in platform.of(moved)]
    assert took < SSH_TIMEOUT_S / 2, (took, timeline)
    lines = _lines(platform, moved)
    assert any(f"server {sid} does not answer: route(s)" in line and "cleanup is skipped" in line for line in lines)
    assert any(f"server {sid} does not answer: its old containers were not stopped" in line for line in lines)

    # back: the next deployment removes what the move left there
    for name in ("sshd", "dockerd"):
        _signal_in(server.name, server.pids[name], signal.SIGCONT)
    await _until(engine, "SELECT count(*) FROM scheduler.servers_down", 0, 60)
    assert [e["data"]["server_id"] for e in metrics.events if e["type"] == "evt.server.back"] == [sid]
    again = await platform.deploy(app_id, _spec("v3", ["local"], host))
    done = await platform.wait(again, timeout=120)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(again))
    assert not any("does not answer" in line for line in _lines(platform, again)), _lines(platform, again)
    assert not server.docker("ps", "-aq", "--filter", f"label=berth.app={app_id}").split()


async def _hang_after_first(rig: dict[str, Any], server: TestServer, app_id: str, host: str) -> None:
    """The app deployed on the server, then the server hangs (its sshd and engine stopped), unreported."""
    platform, sid = rig["platform"], rig["sid"]
    first = await platform.deploy(app_id, _spec("v1", [sid], host))
    done = await platform.wait(first, timeout=120)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(first))
    await _pruned(rig["engine"], app_id)
    for name in ("sshd", "dockerd"):
        _signal_in(server.name, server.pids[name], signal.SIGSTOP)


@pytest.mark.parametrize("rig", [False], indirect=True)
async def test_a_server_not_known_unreachable_costs_a_deployment_at_most_its_ssh_timeout_and_its_pruning_gives_way(
    rig, server, app_id, capfd
) -> None:
    """With no server watcher, a deployment leaving a server that hangs asks it once, within the SSH timeout
    (twice: route removal, then its old containers), and skips its cleanup with the same notes; the engine's
    own call timeout (60 s a call) is never waited for.

    The image pruning after a deployment asks every server that held the app's containers, the hanging
    one too (its records stay); the app's next deployment does not wait behind it: the pruning gives way.
    Left alone, the pruning gives the hanging server its own time limit, not each engine call's (60 s)."""
    platform, sid = rig["platform"], rig["sid"]
    host = f"hang-{uuid.uuid4().hex[:8]}.localhost"
    await _hang_after_first(rig, server, app_id, host)
    moved = await platform.deploy(app_id, _spec("v2", ["local"], host))
    done = await platform.wait(moved, timeout=180)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(moved))
    took = _seconds(platform, moved)
    print(f"\nmoved off the hanging, unreported server in {took:.2f}s (SSH timeout {HANG_SSH_TIMEOUT_S:g}s)")
    timeline = [(e["time"][11:23], e["data"].get("step"), e["data"].get("detail")) for e in platform.of(moved)]
    assert took < 5 * HANG_SSH_TIMEOUT_S, (took, timeline)
    lines = _lines(platform, moved)
    assert any(f"server {sid} does not answer: route(s)" in line for line in lines), lines
    assert any(f"server {sid} does not answer: its old containers were not stopped" in line for line in lines)

    # at once after: the pruning of v2's images (the hanging server among its servers) is under way
    t0 = time.monotonic()
    nxt = await platform.deploy(app_id, _spec("v3", ["local"], host))
    done = await platform.wait(nxt, timeout=180)
    took = time.monotonic() - t0
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(nxt))
    print(f"\nthe next deployment ended {took:.2f}s after it was asked for (SSH timeout {HANG_SSH_TIMEOUT_S:g}s)")
    # its own cleanup skips the hanging server within the SSH timeout (twice: routes, old containers); the
    # engine call's own time limit there (60 s) is not waited for
    assert took < 5 * HANG_SSH_TIMEOUT_S, took

    # nothing else wants the app now: v3's pruning skips the hanging server once its time there is up
    capfd.readouterr()
    t0, seen = time.monotonic(), ""
    while not ("image pruning skipped" in seen and sid in seen):
        assert time.monotonic() - t0 < PRUNE_S + 10, seen[-2000:]
        await asyncio.sleep(0.2)
        seen += "".join(capfd.readouterr())
    print(f"pruning gave up the hanging server {time.monotonic() - t0:.2f}s after the deployment ended")


@pytest.mark.parametrize("rig", [False], indirect=True)
async def test_undo_on_a_hanging_server_is_noted_not_waited_for(rig, server, app_id) -> None:
    """A deployment that fails while a server of the app hangs, unreported: its undo asks the server once,
    within the SSH timeout, notes it in the reason and leaves it as it is (its records stay for the app's
    next deployment), instead of waiting for each engine call's own time limit there."""
    platform, sid = rig["platform"], rig["sid"]
    host = f"undo-{uuid.uuid4().hex[:8]}.localhost"
    await _hang_after_first(rig, server, app_id, host)
    spec = _spec("v2", ["local"], host)
    spec["services"][0]["command"] = web_app(busybox_image(), "v2", host, never_healthy=True)["services"][0]["command"]
    failing = await platform.deploy(app_id, spec, readiness_timeout_s=3)
    done = await platform.wait(failing, timeout=180)
    assert done["type"] == "evt.deployment.failed", (done, platform.steps(failing))
    events = platform.of(failing)
    (began,) = [e for e in events if e["data"].get("step") == "failing"]
    undo_s = (datetime.fromisoformat(done["time"]) - datetime.fromisoformat(began["time"])).total_seconds()
    print(f"\nundo took {undo_s:.2f}s with a hanging server (SSH timeout {HANG_SSH_TIMEOUT_S:g}s)")
    assert undo_s < 2 * HANG_SSH_TIMEOUT_S + 3, undo_s
    assert f"server(s) {sid} did not answer: their new containers are left there" in done["data"]["reason"] or any(
        f"server(s) {sid} did not answer" in (e["data"].get("detail") or "") for e in events
    ), events


def _by_deployment(server: TestServer, app_id: str) -> dict[str, str]:
    """{deployment: state} of the app's containers on the server's engine."""
    out = server.docker(
        "ps", "-a", "--filter", f"label=berth.app={app_id}", "--format", '{{.Label "berth.deployment"}}\t{{.State}}'
    )
    return dict(line.split("\t") for line in out.splitlines() if line.strip())


@pytest.mark.parametrize("rig", [False], indirect=True)
async def test_an_old_replica_an_engine_crash_kept_from_its_stop_is_removed_once_the_engine_answers(
    rig, server, app_id
) -> None:
    """The chaos suite's exited orphan: the server's engine crashes while a deployment there drains, so its
    old replica's stop is skipped (the server does not answer; its record stays) and the deployment succeeds.
    Once the engine is back, with no deployment after (the next one may never come, or fail on a full disk
    before it removes anything), the live replica is started again and the old one, exited by the crash, is
    removed and its record forgotten: the application runs its live version alone, as recorded."""
    platform, sid, engine = rig["platform"], rig["sid"], rig["engine"]
    host = f"crash-{uuid.uuid4().hex[:8]}.localhost"
    first = await platform.deploy(app_id, _spec("v1", [sid], host))
    done = await platform.wait(first, timeout=120)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(first))
    await _pruned(engine, app_id)
    second = await platform.deploy(app_id, _spec("v2", [sid], host), drain_grace_s=3.0)
    await platform.wait(second, ("evt.deployment.progressed",), timeout=120, state="draining")
    await asyncio.to_thread(server.stop_dockerd)  # the engine crashes while the old replica drains
    done = await platform.wait(second, timeout=120)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(second))
    lines = _lines(platform, second)
    assert any(f"server {sid} does not answer: its old containers were not stopped" in line for line in lines), lines
    records = f"SELECT count(*) FROM scheduler.containers WHERE application_id = '{app_id}'"
    await _until(engine, records, 2)  # the old replica's record kept with the live one's

    await asyncio.to_thread(server.restart_dockerd)
    t0 = time.monotonic()
    while (found := _by_deployment(server, app_id)) != {second: "running"}:
        assert time.monotonic() - t0 < 45, found
        await asyncio.sleep(0.2)
    print(f"\nthe live replica alone again {time.monotonic() - t0:.1f}s after the engine answered")
    await _until(engine, records, 1)
    await _until(engine, f"{records} AND deployment_id = '{second}'", 1)
