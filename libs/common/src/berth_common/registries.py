"""Image references and registry hosts: which registry an image comes from, by Docker's own rules.

The api matches a team's registry credentials to an image by its registry host, and the scheduler pulls
from that host with them: both read a reference the same way, here. An image the image map
(``BERTH_IMAGE_MAP``) sends to a mirror is pulled from the mirror's host, so the credentials are the ones
for that host (:func:`pull_host`, :func:`credentials_for`): the api picks them by this rule, the scheduler
and the builder use them by it. The first component of a reference
names a registry when it holds a ``.`` or a ``:`` or is ``localhost``; otherwise the image is on Docker
Hub (``docker.io``). Docker Hub's other host names are the same registry.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from berth_common.images import resolve_image

DOCKER_HUB = "docker.io"
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# A registry host as Docker names it: DNS labels (or an IPv4 address), an optional port; lowercase.
HOST_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?$"
_HOST = re.compile(HOST_PATTERN)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class InvalidReferenceError(ValueError):
    """An image reference or a registry host is malformed (the message names it)."""


def normalize_host(host: str) -> str:
    """A registry host in the form Berth compares: lowercase, Docker Hub's aliases as ``docker.io``.
    Raises :class:`InvalidReferenceError` for anything that is not a host with an optional port (no scheme,
    no path, no user)."""
    value = host.strip().lower()
    if not _HOST.fullmatch(value):
        raise InvalidReferenceError(f"{host!r} is not a registry host (a host name or address, optionally :port)")
    if ":" in value:
        port = int(value.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise InvalidReferenceError(f"{host!r} has no valid port")
    return DOCKER_HUB if value in HUB_ALIASES else value


@dataclass(frozen=True)
class ImageRef:
    """``name[:tag][@digest]`` taken apart. ``name`` is the reference as given without tag and digest
    (what Docker's ``fromImage`` takes); ``registry`` the host it is pulled from."""

    name: str
    registry: str
    tag: str | None = None
    digest: str | None = None

    @property
    def pinned(self) -> bool:
        """Named by digest: the registry cannot give anything else for it."""
        return self.digest is not None

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse(reference: str) -> ImageRef:
    """Take an image reference apart (raises :class:`InvalidReferenceError` if it is not one)."""
    name, _, digest = reference.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise InvalidReferenceError(f"{reference!r} has a malformed digest (sha256:<64 hex digits>)")
    slash = name.rfind("/")
    tag = None
    if ":" in name[slash + 1 :]:
        name, tag = name.rsplit(":", 1)
        if not tag:
            raise InvalidReferenceError(f"{reference!r} has an empty tag")
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise InvalidReferenceError(f"{reference!r} is not an image reference")
    first, has_path, _ = name.partition("/")
    if has_path and ("." in first or ":" in first or first == "localhost"):
        registry = normalize_host(first)
    else:
        registry = DOCKER_HUB
    return ImageRef(name=name, registry=registry, tag=tag, digest=digest or None)


def registry_of(reference: str) -> str:
    """The registry host an image is pulled from (``docker.io`` for Docker Hub)."""
    return parse(reference).registry


def registry_auth_header(registry: str, username: str, password: str) -> str:
    """``X-Registry-Auth`` of a pull or a push: base64url of the JSON the engine expects (never logged: it
    holds the secret)."""
    body = json.dumps({"username": username, "password": password, "serveraddress": registry}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode()


def stream_error(message: Mapping[str, Any]) -> str | None:
    """The error an engine's pull or push stream reports in-band (the call itself answered 200)."""
    detail = message.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return str(detail["message"])
    error = message.get("error")
    return str(error) if error else None


def progress_line(message: Mapping[str, Any], verb: str, quiet: frozenset[str]) -> str | None:
    """A log line (``<verb>: <layer>: <status>``) for one message of a pull or push stream; None for the
    per-layer states in ``quiet``, which change many times a second."""
    status = str(message.get("status") or "").strip()
    if not status or status in quiet:
        return None
    layer = str(message.get("id") or "").strip()
    return f"{verb}: {layer}: {status}" if layer else f"{verb}: {status}"


class _HasRegistry(Protocol):
    @property
    def registry(self) -> str: ...


A = TypeVar("A", bound=_HasRegistry)


def pull_host(reference: str, image_map: Mapping[str, str]) -> str:
    """The registry host ``reference`` is pulled from once the image map rewrote it (a mirror's host)."""
    return registry_of(resolve_image(reference, image_map))


def mirror_hosts(image_map: Mapping[str, str]) -> list[str]:
    """The registry hosts the image map sends images to (where base images of builds come from), sorted."""
    hosts = set()
    for target in image_map.values():
        try:
            hosts.add(registry_of(target))
        except InvalidReferenceError:
            continue
    return sorted(hosts)


def credentials_for(host: str, auths: Iterable[A]) -> A | None:
    """The credentials among ``auths`` for the registry ``host`` (Docker Hub's names are one host), or None."""
    try:
        wanted = normalize_host(host)
    except InvalidReferenceError:
        return None
    for auth in auths:
        try:
            if normalize_host(auth.registry) == wanted:
                return auth
        except InvalidReferenceError:
            continue
    return None
