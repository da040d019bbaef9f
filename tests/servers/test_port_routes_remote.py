"""Two routed ports of one service on a remote server end to end: the real scheduler and proxy-sync, a
namespace test server (its own dockerd, sshd and the Traefik proxy-sync makes there). A replica there is
ready once its own port passes its health check and its second port answers, each checked on the server's
Berth network; each port's hosts reach that port through the server's Traefik, each route file holding the
replica's address at its port. A new version whose second port never answers fails naming the port, and the
running version keeps serving both hosts."""

from __future__ import annotations

import asyncio
import http.client
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from berth_common.bus import Bus
from berth_common.db import make_engine
from berth_common.db.provision import provision
from berth_scheduler.domain import names
from tests.scheduler.platform import Platform
from tests.scheduler.test_port_routes_docker import _spec
from tests.servers.rigs import server_platform, until_count
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers, server_changed

pytestmark = pytest.mark.slow
API, CONSOLE = "api.ports.test", "console.ports.test"


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with running_servers(1) as [one]:
        one.load_image(busybox_image())
        yield one


def _get(address: str, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, 80, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace").strip()
    except Exception as exc:
        return -1, str(exc)
    finally:
        conn.close()


async def _served(address: str, host: str, content: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(_get, address, host)
        if got == (200, content):
            return
        assert time.monotonic() < deadline, f"{host} on {address}: {got}, expected {content}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def remote(server, nats_server, database, tmp_root, unique) -> AsyncIterator[tuple[Platform, str, Path]]:
    """The scheduler and proxy-sync, with the test server announced and recorded (its id, its Traefik root)."""
    urls = await provision(database, "test-secret", ("scheduler", "proxy-sync"))
    servers_root = tmp_root / f"servers-{unique}"
    async with server_platform(nats_server.url, urls, tmp_root, unique, [server], name="ports") as platform:
        sid = f"s{unique}"
        api = Bus("api", nats_server.url)
        await api.connect()
        engine = make_engine(urls["scheduler"], "scheduler")
        try:
            await api.publish(server_changed(server, sid, team_id="team-1", name=f"edge-{sid}"))
            await until_count(engine, "SELECT count(*) FROM scheduler.servers", 1)  # kept from the events
            yield platform, sid, servers_root
        finally:
            await engine.dispose()
            await api.close()


async def test_a_second_port_on_a_remote_server_is_checked_ready_and_routed(remote, server) -> None:
    platform, sid, root = remote
    app_id = uuid.uuid4().hex
    spec = _spec(busybox_image(), API, CONSOLE)
    spec["services"][0]["servers"] = [sid]
    first = await platform.deploy(app_id, spec)
    done = await platform.wait(first, timeout=240)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(first))
    await _served(server.address, API, "api")
    await _served(server.address, CONSOLE, "console")
    own = names.route_id(app_id, "store")
    container = names.container_name("files", "store", first, 1)
    for route_id, port in ((own, 8080), (f"{own}_9001", 9001)):
        text = (root / sid / "dynamic" / f"{route_id}.yml").read_text()
        assert f"http://{container}:{port}" in text, text
    assert platform.route_file(own) is None  # nothing of it runs on the control plane's server

    # a new version whose console never answers: not ready on the server, the deployment fails naming the port
    broken = _spec(busybox_image(), API, CONSOLE, second=False)
    broken["services"][0]["servers"] = [sid]
    second = await platform.deploy(app_id, broken, readiness_timeout_s=3)
    done = await platform.wait(second, timeout=120)
    assert done["type"] == "evt.deployment.failed", done
    assert "port 9001 gave no HTTP answer to GET /" in done["data"]["reason"], done
    await _served(server.address, API, "api")  # the running version keeps serving both hosts
    await _served(server.address, CONSOLE, "console")
    running = server.docker("ps", "--filter", f"label=berth.app={app_id}", "--format", "{{.Names}}").split()
    assert running == [container]
