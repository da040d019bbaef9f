"""Starts a server's Traefik in its holder's namespace, and replaces a running one without refusing or
misrouting a connection (``domain/proxy_handover.py`` has the calls and the order, ``domain/handover_programs``
the two programs).

The replacement's readiness is asked of its own API (the API port is steered to the newest Traefik) through a
port forwarded over the server's SSH connection: it is ready when it answers its ping and lists every router
the running one listed (both watch the same folder); its answers are told from the running one's by the
name it gives itself (``proxy_handover.INSTANCE_FILE``). A replacement that is not ready in time is removed and the
running Traefik keeps every connection.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

import httpx

from berth_common import traefik as tr
from berth_common.logging import get_logger
from berth_proxy_sync.adapters.engine_calls import call
from berth_proxy_sync.domain import handover_programs as programs
from berth_proxy_sync.domain import proxy_handover as ph
from berth_proxy_sync.domain import server_proxy as sp
from berth_proxy_sync.domain.routes import API_USER

if TYPE_CHECKING:
    import asyncssh

    from berth_common.docker import EngineApi

log = get_logger(__name__)
READY_TIMEOUT_S = 30.0
SETTLE_S = 0.5  # after the API shows the routes: the entry points switch to them in the same update
RETIRE_S = float(tr.KEEPALIVE_MAX_S.rstrip("s")) + 1.0  # the old one's kept-alive clients leave meanwhile


async def upload(client: EngineApi, name: str, path: str, program: bytes) -> None:
    """Put ``program`` at ``path`` in the (created, not started) container ``name``."""
    from berth_common.docker import EngineError

    c = ph.upload(name)
    try:
        await client.request(
            c.method,
            c.path,
            data=ph.program_tar(path, program),
            headers={"Content-Type": "application/x-tar"},
            versioned=False,
        )
    except EngineError as exc:
        raise sp.ServerProxyError(f"{c.method} {c.path}: Docker answered {exc.status}: {exc.message}") from None


async def machine(client: EngineApi) -> programs.Arch:
    """The server's architecture, as the programs are written for it; ServerProxyError for another."""
    _, info = await call(client, ph.engine_info())
    try:
        return programs.arch(str((info or {}).get("Architecture") or ""))
    except ValueError as exc:
        raise sp.ServerProxyError(f"the server's Traefik cannot run there: {exc}") from None


async def start_holder(
    client: EngineApi, a: programs.Arch, image: str, web_port: int, websecure_port: int | None
) -> None:
    """Make and start the holder; while its start finds no network (a Swarm's overlay made moments before),
    remove it, wait and make it again, a bounded number of times; on a kernel without ``MIGRATE``, without it."""
    migrate, delays = True, iter(sp.NETWORK_SETTLE_DELAYS_S)
    while True:
        create = ph.holder_create(image, web_port, websecure_port=websecure_port, migrate=migrate)
        await call(client, create, ok=(201,))
        await upload(client, ph.HOLDER, ph.PAUSE_PATH, programs.pause(a))
        try:
            await call(client, sp.container_start(ph.HOLDER))
            return
        except sp.ServerProxyError as exc:
            if migrate and ph.migrate_refused(str(exc)):
                log.warning("the server's kernel does not move queued connections (before Linux 5.14)")
                migrate, delay = False, 0.0
            elif not sp.network_settling(str(exc)) or (later := next(delays, None)) is None:
                raise
            else:
                log.info("server network not attachable yet", why=str(exc), retry_in_s=later)
                delay = later
        await call(client, sp.container_remove(ph.HOLDER), ok=(204, 404))
        await asyncio.sleep(delay)


async def start_traefik(client: EngineApi, name: str, image: str, host_dir: str, https: dict[str, Any]) -> str:
    """Make and start a Traefik in the holder's namespace; the random name it gives itself in its API."""
    instance = secrets.token_hex(8)
    await call(client, ph.traefik_create(name, image, host_dir, instance, **https), ok=(201,))
    await call(client, sp.container_start(name))
    return instance


async def steer(client: EngineApi, a: programs.Arch, image: str, ports: list[tuple[int, int]]) -> None:
    """Run the steering program for ``ports`` in the holder's namespace; ServerProxyError when it fails."""
    await call(client, sp.container_remove(ph.STEER), ok=(204, 404))
    await call(client, ph.steer_create(image), ok=(201,))
    try:
        await upload(client, ph.STEER, ph.STEER_PATH, programs.steer(ports, a))
        await call(client, sp.container_start(ph.STEER))
        _, waited = await call(client, ph.container_wait(ph.STEER))
        code = (waited or {}).get("StatusCode")
        if code != 0:
            raise sp.ServerProxyError(f"steering the Traefik ports {ports} failed at step {code}")
    finally:
        await call(client, sp.container_remove(ph.STEER), ok=(204, 404))


class ApiProbe:
    """The API entry point at the holder's address, over a port forwarded on the SSH connection."""

    def __init__(self, conn: asyncssh.SSHClientConnection, address: str, password: str) -> None:
        self.conn, self.address, self.password = conn, address, password

    async def __aenter__(self) -> ApiProbe:
        self.listener = await self.conn.forward_local_port("127.0.0.1", 0, self.address, tr.API_PORT)
        base = f"http://127.0.0.1:{self.listener.get_port()}"
        # a connection per request: a kept one would stay with the Traefik that answered first
        limits = httpx.Limits(max_keepalive_connections=0)
        self.http = httpx.AsyncClient(base_url=base, timeout=3, auth=(API_USER, self.password), limits=limits)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        self.listener.close()

    async def rawdata(self) -> dict[str, Any]:
        """Traefik's ``/api/rawdata``, or {} while it does not answer."""
        try:
            got = await self.http.get("/api/rawdata")
        except httpx.HTTPError:
            return {}
        return dict(got.json()) if got.status_code == 200 else {}


async def replace(
    client: EngineApi,
    probe: ApiProbe,
    *,
    image: str,
    host_dir: str,
    https: dict[str, Any],
    ready_timeout_s: float = READY_TIMEOUT_S,
    retire_s: float = RETIRE_S,
) -> bool:
    """Replace the running ``CONTAINER`` by one of ``image``; True when replaced, False when the new one did
    not serve in time or could not be given the connections (it is removed: the old one keeps serving them)."""
    web_https = bool(https)
    await call(client, sp.container_remove(ph.NEXT), ok=(204, 404))
    old = ph.router_names(await probe.rawdata())
    try:
        a = await machine(client)
        await steer(client, a, image, ph.steer_ports(web_https, programs.OLDEST))
        instance = await start_traefik(client, ph.NEXT, image, host_dir, https)
        deadline = time.monotonic() + ready_timeout_s
        while not ph.answered_by(seen := await probe.rawdata(), instance) or not old <= ph.router_names(seen):
            if time.monotonic() > deadline:
                raise sp.ServerProxyError(f"the new Traefik did not serve within {ready_timeout_s:g}s")
            await asyncio.sleep(0.1)
        await asyncio.sleep(SETTLE_S)
        await steer(client, a, image, ph.steer_ports(web_https, programs.NEWEST))
    except sp.ServerProxyError as exc:
        log.warning("the server's Traefik is not replaced: the running one keeps serving", why=str(exc))
        await call(client, sp.container_remove(ph.NEXT), ok=(204, 404))
        return False
    await asyncio.sleep(retire_s)
    await call(client, ph.container_stop(sp.CONTAINER), ok=(204, 304, 404))
    await call(client, sp.container_remove(sp.CONTAINER), ok=(204, 404))
    await call(client, ph.container_rename(ph.NEXT, sp.CONTAINER))
    return True
