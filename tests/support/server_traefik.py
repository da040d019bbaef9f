"""A test server whose Traefik proxy-sync's adapter makes and replaces (``server_proxy.ensure``), serving one
app under steady load: the set-up the tests of a server's Traefik replacements share
(tests/servers/test_remote_proxy_handover.py, tests/servers/test_remote_https_on.py).

The server runs ``shop-web-1`` (busybox httpd answering ``v1``) on its Berth network as ``web-shop``; the
Traefik image is copied into its engine beforehand (``traefik_image``: proxy-sync's import of it over SSH is
checked elsewhere), so what the tests wait for is the replacements."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from berth_common import ssh
from berth_common.docker import DockerEngines, local_engine
from berth_common.docker.remote import connect_server
from berth_proxy_sync.adapters import server_proxy
from berth_proxy_sync.adapters.remote_files import RemoteDynamicDir
from berth_proxy_sync.domain.routes import SENTINEL_FILE, render_sentinel
from tests.proxy.support import API_PASSWORD
from tests.scheduler import apps
from tests.servers.test_placement_e2e import HOST, ServerLoad
from tests.support.images import busybox_image, traefik_image
from tests.support.open_loop import OpenLoop
from tests.support.testservers import TestServer, load_images, running_servers

if TYPE_CHECKING:
    import asyncssh

T = TypeVar("T")
SERVER_ID = "srv"
RATE = 50.0  # kept-alive requests per second, open loop (besides the connection-per-request load)
SHOP = {"loadBalancer": {"servers": [{"url": "http://web-shop:8080"}]}}


@dataclass
class ShopServer:
    """The server, its engine's client and SSH connection as proxy-sync holds them, and the Traefiks' root."""

    server: TestServer
    engines: DockerEngines
    conn: asyncssh.SSHClientConnection
    root: str

    def state(self, name: str) -> str:
        """``<id> <image> <running>`` of the container ``name`` on the server."""
        return self.server.docker("inspect", "-f", "{{.Id}} {{.Config.Image}} {{.State.Running}}", name).strip()

    async def ensure(self, image: str, **options: Any) -> RemoteDynamicDir:
        """``server_proxy.ensure`` with ``image`` (``options``: its keywords, a 10 s replacement readiness by
        default), then the sentinel and the shop's route written into the dynamic directory it answers."""
        options.setdefault("ready_timeout_s", 10)
        _, files = await server_proxy.ensure(
            self.engines.api(SERVER_ID), self.conn, root=self.root, server_id=SERVER_ID, image=image,
            binary=Path("/nonexistent"), web_port=80, api_password=API_PASSWORD, **options,
        )  # fmt: skip
        await write_routes(files)
        return files


async def write_routes(files: RemoteDynamicDir) -> None:
    """proxy-sync's sentinel and the shop's route on the ``web`` entry point."""
    await files.write(SENTINEL_FILE, render_sentinel(API_PASSWORD), sentinel=True)
    route = {"rule": f"Host(`{HOST}`)", "entryPoints": ["web"], "service": "shop"}
    await files.write("shop.yml", json.dumps({"http": {"routers": {"shop": route}, "services": {"shop": SHOP}}}))


@contextlib.asynccontextmanager
async def shop_server(tmp_path: Path) -> AsyncIterator[ShopServer]:
    """One test server running the shop on its Berth network (no Traefik yet), removed at the end."""
    image = traefik_image()
    with running_servers(1) as [server]:
        load_images([server], busybox_image(), image)
        target = server.ssh_target()
        pool = ssh.SshPool(tmp_path / "s")
        engines = DockerEngines(local_engine(None))
        try:
            await connect_server(engines, pool, SERVER_ID, target)
            server.docker("network", "create", "--label", "berth.managed=true", "berth")
            server.docker(
                "run", "-d", "--name", "shop-web-1", "--network", "berth", "--network-alias", "web-shop",
                busybox_image(), *apps.web("v1"),
            )  # fmt: skip
            conn = await pool.connection(SERVER_ID, target)
            yield ShopServer(server, engines, conn, str(server.root / "traefik"))
        finally:
            await engines.close()
            await pool.close()


async def under_load(address: str, change: Awaitable[T], *, requests: int, kept_seconds: float) -> T:
    """``change`` awaited under steady GETs and POSTs through the server's port 80 (a connection per request,
    and kept-alive connections as browsers keep them), a second of load before and after it; asserts that
    more than ``requests`` connections and ``kept_seconds`` of kept-alive requests went, each answered by the
    app."""
    load = ServerLoad(address).start()
    kept = OpenLoop(80, HOST, RATE, address=address)
    kept_run = asyncio.create_task(kept.run())
    try:
        await asyncio.sleep(1)
        started = time.monotonic()
        done = await change
        took = time.monotonic() - started
        await asyncio.sleep(1)
    finally:
        results = await asyncio.to_thread(load.stop)
        kept.stop.set()
        await kept_run
    print(f"changed in {took:.1f}s under {len(results)} + {kept.sent} HTTP requests")
    assert len(results) > requests, len(results)
    assert load.errors == [], load.errors[:10]
    assert kept.sent > kept_seconds * RATE and kept.errors == [], (kept.sent, kept.errors[:10])
    assert {text.strip() for text in kept.seen} == {"v1"}
    return done
