"""The whole local platform: `berth up` brings every component ready, `berth status` says so, a killed
service comes back, `berth down` leaves nothing behind but the data plane (Traefik, which the next `berth up`
adopts), `berth down --all` nothing at all, and data survives a restart. Both modes."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import time
import urllib.error
import urllib.request
import uuid

import asyncpg
import nats
import psutil
import pytest
from nats.errors import Error as NatsError
from nats.errors import NoServersError

from berth_cli import nats_auth
from berth_cli.layout import SERVICE_NAMES
from berth_cli.platform import leftovers
from berth_common.bus import Bus
from berth_common.catalogue import PingService
from berth_common.db.provision import service_url
from berth_proxy_sync.domain.routes import api_password
from tests.e2e.conftest import mentioning
from tests.proxy.support import api_request

pytestmark = pytest.mark.slow

COMPONENTS = {"postgres", "nats", "traefik", *SERVICE_NAMES}


def http_status(url: str | urllib.request.Request, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = url if isinstance(url, urllib.request.Request) else urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def process_pids(state: dict) -> set[int]:
    return {state["pid"], *(c["pid"] for c in state["children"].values() if c["pid"])}


def assert_nothing_left(platform, pids: set[int], serving: int | None = None) -> None:
    """Nothing of the platform runs, but ``serving``: the data plane's Traefik."""
    assert not platform.paths.pidfile.exists()
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == ([serving] if serving else [])
    assert leftovers(platform.paths.root) == []
    assert [p.pid for p in mentioning(platform.paths.root)] == ([serving] if serving else [])


def scheduler_url(platform) -> str:
    secret = platform.paths.secret_key.read_text().strip()
    server = f"postgresql+asyncpg://127.0.0.1:{platform.ports['postgres']}/berth"
    return service_url(server, secret, "scheduler").replace("postgresql+asyncpg://", "postgresql://")


async def ping_count(platform, nonce: str) -> int | None:
    conn = await asyncpg.connect(scheduler_url(platform))
    try:
        return await conn.fetchval("SELECT count FROM pings WHERE nonce = $1", nonce)
    finally:
        await conn.close()


def test_every_component_is_ready_and_status_says_so(split_platform):
    code, status = split_platform.status()
    assert code == 0, status
    assert status["mode"] == "split"
    assert set(status["components"]) == COMPONENTS
    assert all(c["healthy"] for c in status["components"].values())
    ports = split_platform.ports
    token = split_platform.paths.metrics_token.read_text().strip()
    for name in SERVICE_NAMES:
        assert http_status(f"http://127.0.0.1:{ports[name]}/readyz") == 200, name
        # every service's /metrics answers the bearer of the scrape token made at first start only
        assert http_status(f"http://127.0.0.1:{ports[name]}/metrics", token) == 200, name
        assert http_status(f"http://127.0.0.1:{ports[name]}/metrics") == 401, name
        assert http_status(f"http://127.0.0.1:{ports[name]}/metrics", token[:-1]) == 401, name
    # the token is in no log and no state file of the platform
    for path in [split_platform.paths.state, *split_platform.paths.logs.rglob("*")]:
        assert not path.is_file() or token.encode() not in path.read_bytes(), path
    # the proxy entry point answers (Traefik: no route for this host)
    assert http_status(f"http://127.0.0.1:{ports['proxy']}/") == 404
    # one process per service, each a child of the one supervisor
    state = split_platform.state()
    pids = {status["components"][n]["pid"] for n in SERVICE_NAMES}
    assert len(pids) == 6
    supervisor = psutil.Process(state["pid"])
    assert {p.pid for p in supervisor.children()} >= pids
    # secrets: made private, and never written to the state file
    paths = split_platform.paths
    for private in (paths.secret_key, paths.pg_password, paths.admin_token):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    text = paths.state.read_text()
    for private in (paths.secret_key, paths.pg_password, paths.admin_token):
        assert private.read_text().strip() not in text


async def test_the_bus_refuses_anonymous_clients_and_each_service_is_connected_as_itself(split_platform):
    url = f"nats://127.0.0.1:{split_platform.ports['nats']}"
    with pytest.raises((NoServersError, NatsError, OSError)):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, error_cb=_ignore)
    await assert_each_service_is_its_own_bus_user(split_platform)
    assert "violation" not in split_platform.paths.log("nats").read_text().lower()
    # nats-server listens on its client port only: no unauthenticated monitoring port
    nats_pid = split_platform.state()["children"]["nats"]["pid"]
    listening = {c.laddr.port for c in psutil.Process(nats_pid).net_connections("inet") if not c.raddr}
    assert listening == {split_platform.ports["nats"]}
    # the configuration and the passwords are private, and reach neither the state file nor a log
    folder = nats_auth.auth_dir(split_platform.paths.root)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    logs = "".join(p.read_text(errors="replace") for p in split_platform.paths.logs.glob("*.log"))
    state = split_platform.paths.state.read_text()
    passwords = [*nats_auth.ensure_passwords(split_platform.paths.root).values()]
    passwords.append(nats_auth.ensure_system_password(split_platform.paths.root))
    for password in passwords:
        assert password not in logs and password not in state


async def assert_each_service_is_its_own_bus_user(platform) -> None:
    """nats-server's list of connections, asked as its system account (no monitoring port is open): each
    service's connection (named ``berth-<service>``) is its own user."""
    url = nats_auth.system_url(platform.paths.root, f"nats://127.0.0.1:{platform.ports['nats']}")
    system = await nats.connect(url, allow_reconnect=False)
    try:
        query = json.dumps({"auth": True, "limit": 1024}).encode()
        reply = await system.request("$SYS.REQ.SERVER.PING.CONNZ", query, timeout=5)
    finally:
        await system.close()
    conns = json.loads(reply.data)["data"]["connections"]
    users = {c.get("name"): c.get("authorized_user") for c in conns}
    assert {name: users.get(f"berth-{name}") for name in SERVICE_NAMES} == {n: n for n in SERVICE_NAMES}, users


async def _ignore(exc: Exception) -> None:
    """nats-py's default error callback prints the refusal: the test checks it by the raise."""


def test_berth_up_prints_the_api_url_and_admin_token(split_platform):
    proc = split_platform.up()  # already running: waits for readiness and prints again
    token = split_platform.paths.admin_token.read_text().strip()
    assert f"http://127.0.0.1:{split_platform.ports['api']}" in proc.stdout
    assert f"admin token: {token}" in proc.stdout


def test_a_killed_service_is_restarted(split_platform):
    before = split_platform.state()["children"]["builder"]
    psutil.Process(before["pid"]).send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 60
    # the supervisor's state file names the new process first (`berth status` reads it too, but starts a
    # Python process per look, seconds each on a loaded machine); then the status says it all is healthy
    while split_platform.state()["children"]["builder"]["pid"] in (None, before["pid"]):
        assert time.monotonic() < deadline, split_platform.state()["children"]["builder"]
        time.sleep(0.1)
    while True:
        code, status = split_platform.status()
        builder = status["components"]["builder"]
        if code == 0 and builder["pid"] not in (None, before["pid"]):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert builder["restarts"] == before["restarts"] + 1
    log = (split_platform.paths.logs / "supervisor.log").read_text()
    assert "child exited, restarting" in log and "child=builder exit=-9" in log


async def test_down_leaves_nothing_and_up_keeps_the_data(split_platform):
    platform = split_platform
    nonce = uuid.uuid4().hex
    operator = nats_auth.ensure_passwords(platform.paths.root)["operator"]  # the liveness probe's sender
    bus = Bus("e2e-test", f"nats://127.0.0.1:{platform.ports['nats']}", user="operator", password=operator)
    await bus.connect()
    try:
        await bus.publish(PingService(nonce=nonce))
    finally:
        await bus.close()
    deadline = time.monotonic() + 30
    while await ping_count(platform, nonce) != 1:
        assert time.monotonic() < deadline, "the scheduler did not record the ping"
        await asyncio.sleep(0.2)
    secret = platform.paths.secret_key.read_text()
    token = platform.paths.admin_token.read_text()
    pids = process_pids(platform.state())
    assert len(pids) == 10  # supervisor, postgres, nats, traefik, six services
    traefik = platform.state()["children"]["traefik"]["pid"]

    proc = platform.down()
    assert f"applications keep serving: traefik (pid {traefik})" in proc.stdout
    assert "`berth down --all` stops traefik too" in proc.stdout
    assert_nothing_left(platform, pids, serving=traefik)
    assert http_status(f"http://127.0.0.1:{platform.ports['proxy']}/") == 404  # Traefik still answers
    code, status = platform.status()
    assert code == 1 and status["running"] is False

    platform.up()  # adopts the running Traefik: its ports are not "already in use"
    assert platform.paths.secret_key.read_text() == secret
    assert platform.paths.admin_token.read_text() == token
    assert await ping_count(platform, nonce) == 1
    state = platform.state()
    assert state["children"]["traefik"]["pid"] == traefik and state["children"]["traefik"]["adopted"] is True
    assert process_pids(state).isdisjoint(pids - {traefik})
    assert "traefik adopted: it kept serving" in platform.paths.log("supervisor").read_text()


def test_all_in_one_runs_the_six_services_in_one_process(fresh_platform):
    proc = fresh_platform.up("--all-in-one")
    assert "admin token: berth_" in proc.stdout
    code, status = fresh_platform.status()
    assert code == 0, status
    assert status["mode"] == "all-in-one"
    [pid] = {status["components"][n]["pid"] for n in SERVICE_NAMES}
    assert {status["components"][n]["process"] for n in SERVICE_NAMES} == {"allinone"}
    for name in SERVICE_NAMES:
        assert http_status(f"http://127.0.0.1:{fresh_platform.ports[name]}/readyz") == 200, name
    asyncio.run(assert_each_service_is_its_own_bus_user(fresh_platform))  # one process, six bus identities
    # proxy-sync wrote the sentinel route file at its start, and Traefik loaded it
    # (its API router too: the API answers proxy-sync's password, derived from the secret key, only)
    traefik_api = f"http://127.0.0.1:{fresh_platform.ports['traefik_api']}"
    password = api_password(fresh_platform.paths.secret_key.read_text().strip())
    deadline = time.monotonic() + 10  # Traefik loads a new file within its 50 ms throttle
    while http_status(api_request(f"{traefik_api}/api/http/routers/berth-sentinel@file", password)) != 200:
        assert time.monotonic() < deadline, "Traefik never loaded the sentinel"
        time.sleep(0.05)
    assert http_status(f"{traefik_api}/api/rawdata") == 401
    state = fresh_platform.state()
    assert set(state["children"]) == {"postgres", "nats", "traefik", "allinone"}
    assert psutil.Process(pid).cmdline()[-1].endswith("berth-allinone")
    # the supervisor dies hard: its children follow it (parent-death signal) but Traefik, which keeps serving;
    # `berth down --all` tidies up
    pids = process_pids(state)
    traefik = state["children"]["traefik"]["pid"]
    psutil.Process(state["pid"]).kill()
    children = [psutil.Process(p) for p in pids - {state["pid"], traefik}]
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
    assert psutil.Process(traefik).is_running()
    proc = fresh_platform.berth("down", "--all")
    assert proc.returncode == 0, proc.stderr
    assert "berth was not running" in proc.stdout and "applications keep serving" not in proc.stdout
    assert_nothing_left(fresh_platform, pids)


def test_an_external_database_is_used_instead_of_starting_postgres(fresh_platform, database, postgres):
    fresh_platform.env["BERTH_DATABASE_URL"] = database
    fresh_platform.up("--all-in-one")
    code, status = fresh_platform.status()
    assert code == 0, status
    assert status["components"]["postgres"] == {
        "healthy": True,
        "process": None,
        "pid": None,
        "restarts": 0,
        "state": "external",
        "log": str(fresh_platform.paths.log("supervisor")),
    }
    state = fresh_platform.state()
    assert set(state["children"]) == {"nats", "traefik", "allinone"}
    assert state["urls"]["postgres"] == "external"
    assert not fresh_platform.paths.pgdata.exists()
    # the services use their own roles on that server; the admin URL reached none of them
    allinone = psutil.Process(state["children"]["allinone"]["pid"])
    environ = allinone.environ()
    assert "BERTH_DATABASE_URL" not in environ
    assert environ["BERTH_SCHEDULER_DATABASE_URL"].startswith("postgresql+asyncpg://berth_scheduler:")
    assert f":{postgres.port}/" in environ["BERTH_SCHEDULER_DATABASE_URL"]
    fresh_platform.down()
