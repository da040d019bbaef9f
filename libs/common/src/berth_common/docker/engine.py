"""Which Docker engine a service talks to and where its API answers, as pure data.

An :class:`Engine` names the server it belongs to (``local`` for the control plane's own engine), the
:class:`Endpoint` where its API listens and the API version every request is pinned to. The endpoint is
read from a URL the way the docker CLI reads ``DOCKER_HOST``: ``unix:///path/docker.sock``,
``tcp://host:port`` or ``http://host:port``, and ``https://host:port`` (or ``tcp://`` with
``DOCKER_TLS_VERIFY=1``) with the client certificate, key and CA in ``DOCKER_CERT_PATH`` (default
``~/.docker``). Without a URL: ``DOCKER_HOST``, else the local socket.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LOCAL = "local"  # the server id of the control plane's own engine
DEFAULT_SOCKET = "/var/run/docker.sock"
API_VERSION = "v1.41"  # dockerd 20.10: every request names it, so no round trip negotiates it
_API_VERSION = re.compile(r"^v[0-9]+\.[0-9]+$")


class DockerUnavailable(RuntimeError):
    """The engine did not answer: not running, its socket missing, the connection broke, or too slow.

    A transient condition: callers retry (a build, a rollout step) or report the server unreachable."""


@dataclass(frozen=True)
class Endpoint:
    """Where an engine's API listens: a unix socket, or a host and port (with TLS or without)."""

    unix_path: str | None = None
    host: str = "localhost"
    port: int = 2375
    tls: bool = False
    cert_path: str | None = None  # the folder of ca.pem, cert.pem and key.pem (with TLS)

    @property
    def url(self) -> str:
        """The endpoint as a URL an HTTP client accepts (``unix://``, ``http://`` or ``https://``)."""
        if self.unix_path is not None:
            return f"unix://{self.unix_path}"
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def host_header(self) -> str:
        return "docker" if self.unix_path is not None else f"{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client's TLS context (reads the certificate files); None without TLS."""
        if not self.tls:
            return None
        certs = Path(self.cert_path or Path.home() / ".docker")
        ca = certs / "ca.pem"
        context = ssl.create_default_context(cafile=str(ca) if ca.exists() else None)
        if (certs / "cert.pem").exists():
            context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
        return context


def endpoint(url: str | None, env: Mapping[str, str] | None = None) -> Endpoint:
    """Where the engine listens, from a URL (or ``DOCKER_HOST``, or the local socket); ValueError if the URL
    names no engine Berth can reach."""
    env = os.environ if env is None else env
    url = url or env.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return Endpoint(unix_path=(parts.netloc + parts.path) or DEFAULT_SOCKET)
    if parts.scheme in ("tcp", "http", "https"):
        if not parts.hostname:
            raise ValueError(f"no host in the Docker URL {url!r}")
        tls = parts.scheme == "https" or (parts.scheme == "tcp" and env.get("DOCKER_TLS_VERIFY") == "1")
        cert_path = (env.get("DOCKER_CERT_PATH") or str(Path.home() / ".docker")) if tls else None
        return Endpoint(host=parts.hostname, port=parts.port or (2376 if tls else 2375), tls=tls, cert_path=cert_path)
    raise ValueError(f"unsupported Docker URL {url!r} (unix://, tcp://, http:// or https://)")


def check_api_version(value: str) -> str:
    """``v<major>.<minor>``, the form the Engine API takes in a path."""
    if not _API_VERSION.fullmatch(value):
        raise ValueError(f"invalid Docker API version {value!r} (like {API_VERSION})")
    return value


@dataclass(frozen=True)
class Engine:
    """One Docker engine: the server it belongs to, where its API answers, the API version it is spoken to in."""

    where: Endpoint
    api_version: str = API_VERSION
    server_id: str = LOCAL

    def __post_init__(self) -> None:
        check_api_version(self.api_version)


def local_engine(url: str | None, api_version: str = API_VERSION, env: Mapping[str, str] | None = None) -> Engine:
    """The control plane's own engine, from a service's settings (no URL: ``DOCKER_HOST``, else the socket)."""
    return Engine(endpoint(url, env), api_version, LOCAL)
