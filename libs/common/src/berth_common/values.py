"""Grammars of the values every service shares: DNS labels and host names, slugs, environment-variable
names, docker image references, git repository URLs and git refs.

Each rule is written once here, as a pure function that returns the value (normalised where it says so)
or raises ``ValueError`` saying why, and as an ``Annotated`` pydantic type that the catalogue's messages
use, so a producer cannot build a message carrying a bad value. Whatever passes may reach a command line
(as one argv element), a file path, a Traefik rule or the Docker API, so the rules are strict: ASCII only,
no control characters, bounded lengths, nothing git could read as an option or a remote helper.

A received message that breaks a rule is dead-lettered by the bus consumer, unless its consumer checks
the values itself (``CONSUMER_CHECKS_VALUES`` in the catalogue: the builder a build's source and tag,
proxy-sync a route's hosts) and answers a bad one with its own failure event naming the field. Such a
message is parsed with ``context=RECEIVED``: then a type checks only its field constraints (length,
pattern) and leaves the rest of its rule to that consumer, which calls the same function here.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, ValidationInfo

RECEIVED: Final[Mapping[str, bool]] = MappingProxyType({"berth_received": True})

MAX_HOST = 253
MAX_IMAGE = 255
MAX_URL = 2048
MAX_REF = 255

# The one DNS label (RFC 1123) of the codebase: lowercase letters, digits and '-', 1-63, no '-' at an end.
DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DNS_LABEL_PATTERN = rf"^{DNS_LABEL}$"
DNS_LABEL_RE = re.compile(DNS_LABEL_PATTERN)
# A host name: labels joined by '.', at most 253 characters, any case (ASCII only).
HOST_NAME_RE = re.compile(rf"^(?=.{{1,{MAX_HOST}}}$){DNS_LABEL}(?:\.{DNS_LABEL})*$", re.IGNORECASE | re.ASCII)
# Applications and services: a DNS label of at most 32 (they are parts of container names).
SLUG = r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?"
SLUG_PATTERN = rf"^{SLUG}$"
SLUG_RE = re.compile(SLUG_PATTERN)
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
ENV_NAME_RE = re.compile(ENV_NAME_PATTERN)
# A container's own environment also takes '.' and '-' (Elasticsearch's ``discovery.type``); names Berth
# interpolates or hands to a shell (application variables, build args, ``.env`` lines) stay ENV_NAME_PATTERN.
CONTAINER_ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
CONTAINER_ENV_NAME_RE = re.compile(CONTAINER_ENV_NAME_PATTERN)

# Docker's reference grammar: [host[:port]/]component(/component)*[:tag][@sha256:digest], lowercase name.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?"
_IMAGE_NAME = rf"(?:{_REGISTRY}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_IMAGE_TAG = r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
IMAGE_TAG_PATTERN = rf"^{_IMAGE_NAME}{_IMAGE_TAG}$"
IMAGE_REF_PATTERN = rf"^{_IMAGE_NAME}{_IMAGE_TAG}(?:@sha256:[0-9a-f]{{64}})?$"
_IMAGE_RE = re.compile(rf"^(?:(?P<registry>{_REGISTRY})/)?{_COMPONENT}(?:/{_COMPONENT})*{_IMAGE_TAG}(?P<digest>@.*)?$")
_DIGEST_RE = re.compile(r"^@sha256:[0-9a-f]{64}$")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PCT_CONTROL = re.compile(r"%(?:[01][0-9a-f]|7f)", re.IGNORECASE)
_HELPER = re.compile(r"^[A-Za-z0-9+.-]*::")  # git's remote-helper syntax: ext::, fd::, anything::
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
_USER = re.compile(r"^[A-Za-z0-9._~%!$&'()*+,;=-]{1,256}$")
_SCP = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+|\[[0-9A-Fa-f:.]+\]):(?P<path>.+)$")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")

GitTransport = Literal["https", "http", "git", "ssh", "file"]
_REMOTE: dict[str, GitTransport] = {"https": "https", "http": "http", "git": "git", "ssh": "ssh"}


def printable_ascii(value: str, what: str) -> None:
    """Raise unless ``value`` is ASCII without control characters (``what`` names it in the message)."""
    if _CONTROL.search(value):
        raise ValueError(f"control characters (newline, tab, NUL, ...) are not allowed in {what}")
    if not value.isascii():
        raise ValueError(f"only ASCII characters are allowed in {what}")


# --- names -------------------------------------------------------------------------------------------


def dns_label(value: str) -> str:
    """A DNS label: 1-63 lowercase letters, digits or '-', no '-' at either end."""
    if not DNS_LABEL_RE.fullmatch(value):
        raise ValueError("use 1-63 lowercase letters, digits or '-' (not at either end)")
    return value


def host_name(value: str) -> str:
    """A DNS host name (RFC 1123), lowercased: labels of letters, digits and '-' joined by '.', at most 253
    characters. Internationalised names are given in punycode; a trailing dot, a wildcard, a port or a
    scheme are refused. Callers that need more (two labels, not an address) check it themselves."""
    printable_ascii(value, "a host name")
    host = value.lower()
    if not 1 <= len(host) <= MAX_HOST:
        raise ValueError(f"a host name has 1-{MAX_HOST} characters")
    for label in host.split("."):
        if not DNS_LABEL_RE.fullmatch(label):
            raise ValueError(f"invalid label {label[:63]!r}: 1-63 letters, digits or '-' (not at either end)")
    return host


WILDCARD_PREFIX = "*."


def route_host(value: str) -> str:
    """A host a route serves: a host name (see :func:`host_name`), or a wildcard ``*.<host name>`` whose
    ``*`` stands for exactly one label (``*.example.com`` serves ``a.example.com``, not ``example.com`` nor
    ``a.b.example.com``); the name after ``*.`` has at least two labels. Lowercased."""
    printable_ascii(value, "a host name")
    if not value.startswith(WILDCARD_PREFIX):
        return host_name(value)
    base = host_name(value[len(WILDCARD_PREFIX) :])
    if "." not in base:
        raise ValueError("a wildcard host names at least two labels after '*.' (e.g. *.example.com)")
    return WILDCARD_PREFIX + base


MAX_ROUTE_PATH = 200
ROUTE_PATH_PATTERN = r"^/[A-Za-z0-9._~/-]{0,199}$"
_ROUTE_PATH_RE = re.compile(ROUTE_PATH_PATTERN)


def route_path(value: str) -> str:
    """The URL path prefix a route serves on its hosts (Traefik's ``PathPrefix``): ``/`` then letters,
    digits, ``-``, ``.``, ``_``, ``~`` and ``/``, at most 200 characters, no empty, ``.`` or ``..``
    segment. It reaches a Traefik rule between backticks, so nothing else passes. ``/`` is the whole host."""
    printable_ascii(value, "a path")
    if not _ROUTE_PATH_RE.fullmatch(value):
        raise ValueError(
            f"a path starts with '/' and has at most {MAX_ROUTE_PATH} letters, digits, '-', '.', '_', '~' or '/'"
        )
    inner = value[1:].removesuffix("/")
    if value != "/" and any(seg in ("", ".", "..") for seg in inner.split("/")):
        raise ValueError("a path has no empty, '.' or '..' segment")
    return value


def is_wildcard(host: str) -> bool:
    """Whether ``host`` is a wildcard host (``*.example.com``)."""
    return host.startswith(WILDCARD_PREFIX)


def server_address(value: str) -> str:
    """Where a server answers SSH: a host name (see :func:`host_name`) or an IPv4/IPv6 address."""
    import ipaddress

    printable_ascii(value, "a server address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    return host_name(value)


SSH_USER_PATTERN = r"^[a-z_][a-z0-9_.-]{0,31}$"


def slug(value: str) -> str:
    """Applications and services: like a DNS label, but at most 32 (they end up in container names)."""
    if not SLUG_RE.fullmatch(value):
        raise ValueError("use 1-32 lowercase letters, digits or '-' (not at either end)")
    return value


def env_var_name(value: str) -> str:
    """An environment-variable (or build-arg) name: ``[A-Za-z_][A-Za-z0-9_]*``, at most 128."""
    if not ENV_NAME_RE.fullmatch(value):
        raise ValueError("a variable name is [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)")
    return value


def image_ref(value: str, *, digest: bool = True) -> str:
    """A docker image reference: ``[registry[:port]/]name[:tag][@sha256:digest]``, lowercase name, at most
    255 characters. ``digest=False``: a tag to give an image (no digest)."""
    printable_ascii(value, "an image reference")
    if not 1 <= len(value) <= MAX_IMAGE:
        raise ValueError(f"an image reference has 1-{MAX_IMAGE} characters")
    if value.startswith("-"):
        raise ValueError("an image reference may not start with '-'")
    m = _IMAGE_RE.fullmatch(value)
    if m is None or (m.group("digest") is not None and not _DIGEST_RE.fullmatch(m.group("digest"))):
        raise ValueError("not an image reference: [registry[:port]/]name[:tag][@sha256:digest], lowercase name")
    if m.group("digest") is not None and not digest:
        raise ValueError("an image tag names no digest: [registry[:port]/]name[:tag]")
    registry = m.group("registry")
    if registry and ":" in registry and not 0 < int(registry.rsplit(":", 1)[1]) < 65536:
        raise ValueError("invalid registry port")
    return value


def image_tag(value: str) -> str:
    """An image reference without a digest: what a build tags its image as."""
    return image_ref(value, digest=False)


# --- git ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitLocation:
    """A checked repository location: ``url`` is what git receives (a local repository as a ``file://``
    URL), ``display`` what may be printed (a local repository's path, else the URL as given)."""

    transport: GitTransport
    url: str
    display: str

    @property
    def local(self) -> bool:
        return self.transport == "file"


def git_url(value: str, *, allow_local: bool = False) -> str:
    """A repository as given, if :func:`git_location` accepts it."""
    git_location(value, allow_local=allow_local)
    return value


def git_location(value: str, *, allow_local: bool = False) -> GitLocation:
    """https://, http://, git://, ssh:// or scp-like ``[user@]host:path`` (the host a name or a bracketed
    IPv6 address); ``file://`` and absolute paths only when local repositories are allowed.

    Refused: option injection (a leading '-' in the URL, host, user or path), remote helpers (``ext::``),
    whitespace, control characters (also percent-encoded), non-ASCII, fragments, and credentials (a
    password, or a user name over http(s), which is a token): they would be stored and shown in the clear.
    """
    if not value:
        raise ValueError("a repository URL is required")
    if len(value) > MAX_URL:
        raise ValueError(f"a repository URL is longer than {MAX_URL} characters")
    printable_ascii(value, "a repository URL")
    if any(c.isspace() for c in value):
        raise ValueError("whitespace is not allowed in a repository URL")
    if value.startswith("-"):
        raise ValueError("may not start with '-' (git would read it as an option)")
    if _PCT_CONTROL.search(value):
        raise ValueError("percent-encoded control characters are not allowed")
    if _HELPER.match(value):
        raise ValueError("git remote helpers ('ext::', 'fd::', ...) are not allowed")
    if "://" in value:
        return _url(value, allow_local)
    if value.startswith(("/", "./", "../", "~")) or ":" not in value:
        if not allow_local:
            raise ValueError("local repository paths are not allowed on this server (BERTH_ALLOW_LOCAL_GIT)")
        return _local(value)
    m = _SCP.fullmatch(value)
    if m is None:
        raise ValueError("not a repository URL (https://, http://, git://, ssh:// or user@host:path)")
    user, host, path = m.group("user"), m.group("host"), m.group("path")
    if user is not None and (user.startswith("-") or not _USER.fullmatch(user)):
        raise ValueError("invalid user name in the URL")
    _git_host(host)
    if path.startswith("-"):
        raise ValueError("the repository path may not start with '-'")
    return GitLocation("ssh", value, value)


def _url(value: str, allow_local: bool) -> GitLocation:
    scheme = value.split("://", 1)[0].lower()
    if scheme == "file":
        if not allow_local:
            raise ValueError("file:// repositories are not allowed on this server (BERTH_ALLOW_LOCAL_GIT)")
        return _local(urllib.parse.unquote(value[len("file://") :]))
    transport = _REMOTE.get(scheme)
    if transport is None:
        raise ValueError(f"scheme {scheme[:20]!r} is not allowed; use https, http, git or ssh")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError("invalid port")
    host = parts.hostname or ""
    if parts.netloc.rpartition("@")[2].startswith("["):
        host = f"[{host}]"
    _git_host(host)
    if parts.username is not None and (not parts.username or parts.username.startswith("-")):
        raise ValueError("invalid user name in the URL")
    if parts.password is not None or (parts.username is not None and scheme in ("http", "https")):
        raise ValueError("credentials in the repository URL are not accepted (they would not stay secret)")
    if not parts.path or parts.path == "/":
        raise ValueError("the URL names no repository path")
    if parts.path.startswith("/-"):
        raise ValueError("the repository path may not start with '-'")
    if parts.fragment or "#" in value:
        raise ValueError("a repository URL has no fragment ('#')")
    return GitLocation(transport, value, value)


def _git_host(host: str) -> None:
    if not host:
        raise ValueError("the URL has no host")
    if host.startswith("-"):
        raise ValueError("a host may not start with '-'")
    if not (HOST_NAME_RE.fullmatch(host) or _IPV6.fullmatch(host)):
        raise ValueError("invalid host name in the URL")


def _local(path: str) -> GitLocation:
    if not path.startswith("/"):
        raise ValueError("a local repository must be an absolute path")
    norm = posixpath.normpath(path)
    if any(part == ".." for part in path.split("/")) or norm != path.rstrip("/"):
        raise ValueError("a local repository path must be normalised (no '..', '.' or '//')")
    return GitLocation("file", "file://" + urllib.parse.quote(norm, safe="/._-~+@"), norm)


def git_ref(value: str) -> str:
    """A ref as given, if :func:`git_ref_name` accepts it."""
    git_ref_name(value)
    return value


def git_ref_name(value: str) -> str:
    """A branch, a tag, ``HEAD`` or a commit id, by git's check-ref-format rules and never starting with
    '-'; returns the name without a ``refs/heads/`` or ``refs/tags/`` prefix."""
    if not 1 <= len(value) <= MAX_REF:
        raise ValueError(f"a ref name has 1-{MAX_REF} characters")
    printable_ascii(value, "a ref name")
    name = value
    for prefix in ("refs/heads/", "refs/tags/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    why = _ref_problem(name)
    if why:
        raise ValueError(why)
    return name


def _ref_problem(name: str) -> str | None:
    checks = (
        (not name, "empty ref name"),
        (name.startswith("-"), "may not start with '-' (git would read it as an option)"),
        (name == "@", "'@' is not a valid ref name"),
        (bool(_REF_FORBIDDEN.search(name)), "spaces and the characters ~ ^ : ? * [ \\ are not allowed in a ref"),
        (".." in name, "'..' is not allowed in a ref name"),
        ("@{" in name, "'@{' is not allowed in a ref name"),
        (name.startswith("/") or name.endswith("/") or "//" in name, "no '/' at either end and no '//'"),
        (name.endswith("."), "a ref name may not end with '.'"),
    )
    for bad, why in checks:
        if bad:
            return why
    for component in name.split("/"):
        if component.startswith("."):
            return "a ref name component may not start with '.'"
        if component.endswith(".lock"):
            return "a ref name component may not end with '.lock'"
    return None


# --- pydantic types ----------------------------------------------------------------------------------


def _rule(check: Callable[[str], str]) -> AfterValidator:
    """``check`` as a validator, skipped when a message is parsed with ``context=RECEIVED``."""

    def validate(value: str, info: ValidationInfo) -> str:
        if isinstance(info.context, Mapping) and info.context.get("berth_received"):
            return value
        return check(value)

    return AfterValidator(validate)


DnsLabel = Annotated[str, Field(max_length=63, pattern=DNS_LABEL_PATTERN)]
Slug = Annotated[str, Field(max_length=32, pattern=SLUG_PATTERN)]
EnvVarName = Annotated[str, Field(max_length=128, pattern=ENV_NAME_PATTERN)]
ContainerEnvName = Annotated[str, Field(max_length=128, pattern=CONTAINER_ENV_NAME_PATTERN)]
HostName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_HOST, json_schema_extra={"format": "hostname"}),
    _rule(host_name),
]
# a host a route serves: a host name or a one-label wildcard (``*.example.com``)
RouteHost = Annotated[
    str,
    Field(min_length=1, max_length=MAX_HOST, json_schema_extra={"format": "hostname"}),
    _rule(route_host),
]
# the URL path prefix of a route (``/api``); ``/``: the whole host
RoutePath = Annotated[str, Field(min_length=1, max_length=MAX_ROUTE_PATH), _rule(route_path)]
ServerAddress = Annotated[str, Field(min_length=1, max_length=MAX_HOST), _rule(server_address)]
SshUser = Annotated[str, Field(pattern=SSH_USER_PATTERN, max_length=32)]
ImageRef = Annotated[str, Field(max_length=MAX_IMAGE, pattern=IMAGE_REF_PATTERN), _rule(image_ref)]
ImageTag = Annotated[str, Field(max_length=MAX_IMAGE, pattern=IMAGE_TAG_PATTERN), _rule(image_tag)]
GitUrl = Annotated[
    str,
    Field(min_length=1, max_length=MAX_URL, examples=["https://github.com/acme/shop.git"]),
    _rule(lambda value: git_url(value, allow_local=True)),  # local ones: the consumer's setting decides
]
GitRef = Annotated[str, Field(min_length=1, max_length=MAX_REF, examples=["main"]), _rule(git_ref)]
