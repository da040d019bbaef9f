"""Two routed ports of one service on a remote server end to end: the real scheduler and proxy-sync, a
namespace test server (its own dockerd, sshd and the Traefik proxy-sync makes there). A replica there is
ready once its own port passes its health check and its second port answers, each checked on the server's
Berth network; each port's hosts reach that port through the server's Traefik, each route file holding the
replica's address at its port. A new version whose second port never answers fails naming the port, and the
running version keeps serving both hosts. A read-only file (compose's ``:ro``) is bound read-only there from
its volume on that server: root in the replica cannot change it."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from berth_common.bus import Bus
from berth_common.db import make_engine
from berth_common.db.provision import provision
from berth_proxy_sync.settings import ProxySyncSettings
from berth_scheduler.domain import names
from berth_scheduler.settings import SchedulerSettings
from tests.proxy.support import ProxySync, Traefik
from tests.scheduler.platform import Platform, Scheduler
from tests.scheduler.test_port_routes_docker import _spec
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
    root = tmp_root / f"traefik-ports-{unique}"
    root.mkdir()
    servers_root = tmp_root / f"servers-{unique}"
    traefik = Traefik(root).start()
    proxy = ProxySync(
        ProxySyncSettings(
            nats_url=nats_server.url,
            database_url=urls["proxy-sync"],
            http_port=0,
            traefik_dynamic_dir=traefik.dynamic_dir,
            traefik_api_url=traefik.api_url,
            server_traefik_root=str(servers_root),
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
            readiness_timeout_s=25,
            route_timeout_s=60,
            readiness_interval_s=0.1,
            ssh_timeout_s=3,
        )
    )
    platform = await Platform(nats_server.url, traefik, scheduler, proxy).start()
    sid = f"s{unique}"
    api = Bus("api", nats_server.url)
    await api.connect()
    engine = make_engine(urls["scheduler"], "scheduler")
    try:
        await api.publish(server_changed(server, sid, team_id="team-1", name=f"edge-{sid}"))
        deadline = time.monotonic() + 20
        while True:  # the scheduler keeps its directory from the events
            known = 0
            with contextlib.suppress(sa.exc.ProgrammingError):  # its migrations may still be running
                async with engine.connect() as conn:
                    known = (await conn.execute(sa.text("SELECT count(*) FROM scheduler.servers"))).scalar()
            if known == 1:
                break
            assert time.monotonic() < deadline, "the scheduler did not record the server"
            await asyncio.sleep(0.1)
        yield platform, sid, servers_root
    finally:
        await engine.dispose()
        await api.close()
        await platform.close()
        traefik.stop()
        with contextlib.suppress(Exception):
            found = server.docker("ps", "-aq", "--filter", "label=berth.managed=true").split()
            if found:
                server.docker("rm", "-f", *found)


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


async def test_a_read_only_file_on_a_remote_server_cannot_be_changed_by_root(remote, server) -> None:
    """Compose's ``:ro`` on a remote server: the files' volume is made and filled through that server's
    engine, and the file is bound read-only from its directory there (the engine's ``Mountpoint``); the
    replica mounts the volume too, so ``docker volume prune`` there leaves it."""
    platform, sid, _ = remote
    app_id = uuid.uuid4().hex
    spec = {
        "name": "conf",
        "source": {"kind": "image", "image": busybox_image()},
        "services": [
            {
                "kind": "worker",
                "name": "tools",
                "command": ["sh", "-c", "exec sleep 3600"],
                "files": [{"source": "motd", "target": "/etc/app/motd", "read_only": True}],
                "servers": [sid],
            }
        ],
        "files": [{"path": "motd", "content": "hello from a file\n"}],
        "stop_timeout_s": 1,
    }
    dep = await platform.deploy(app_id, spec)
    done = await platform.wait(dep, timeout=240)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(dep))
    container = names.container_name("conf", "tools", dep, 1)
    assert server.docker("exec", "-u", "0", container, "cat", "/etc/app/motd") == "hello from a file\n"
    with pytest.raises(RuntimeError, match="Read-only file system"):
        server.docker("exec", "-u", "0", container, "sh", "-c", "echo changed > /etc/app/motd")
    assert server.docker("exec", "-u", "0", container, "cat", "/etc/app/motd") == "hello from a file\n"
    volumes = server.docker("volume", "ls", "-q", "--filter", f"label=berth.app={app_id}").split()
    assert [v.startswith(f"berth-{app_id}_files-") for v in volumes] == [True], volumes
    # that engine counts the replica as a user of the volume: an operator's prune leaves it, a restart works
    server.docker("volume", "prune", "-f", "--filter", f"label=berth.app={app_id}")
    assert server.docker("volume", "ls", "-q", "--filter", f"label=berth.app={app_id}").split() == volumes
    server.docker("restart", "-t", "1", container)
    assert server.docker("exec", "-u", "0", container, "cat", "/etc/app/motd") == "hello from a file\n"
