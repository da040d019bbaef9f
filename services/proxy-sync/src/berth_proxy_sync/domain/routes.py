"""Routes and their Traefik dynamic configuration: pure data, validated, tested by exact comparison.

One route is owned by one file, ``<route_id>.yml``, which defines exactly one router and one service, both
named ``route-<route_id>``. Names never repeat across files (Traefik drops a name defined differently in two
files), and never collide with the permanent sentinel router (``berth-sentinel`` in
``000-berth-sentinel.yml``), which keeps the configuration non-empty when the last route is removed:
Traefik ignores an empty configuration and would go on serving the removed route.

A route with a path (``path``, Traefik's ``PathPrefix``) serves only the requests under it on its hosts: each
of its routers' host rule is ``(<hosts>) && PathPrefix(`<path>`)``, with the priority ``tls.PATH_PRIORITY`` plus
the path's length, so it wins over the whole-host route of the same host (whose priority is its rule's
length, never that high) and a longer prefix wins over a shorter one; the path reaches the application
as it came (not stripped, as Coolify does). Routes of one application's services share a host by path:
a route claims each host with its path (``claims``), so two routes may serve one host under different
paths (the api gives a host to one application only). Its HTTP to HTTPS and ``www`` redirects stay
whole-host (every route of the host redirects alike), and it serves HTTPS with the host's certificate.

A route that buffers requests (``buffering``) has a ``buffering`` middleware, ``<name>-buffering``,
on every one of its routers: Traefik reads a request's whole body (at most its ``max_body_mb``, else 413)
before forwarding it, for an application that answers before reading the body (``catalogue/buffering.py``).

The sentinel file also holds Traefik's API router (``berth-api`` on the ``traefik`` entry point, behind
basic authentication): the static configuration serves the API on no entry point by itself, so only
proxy-sync, which knows the password, reads it (``api_password``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from berth_common import traefik_body
from berth_common.catalogue.buffering import MEM_BODY_BYTES, RequestBuffering
from berth_common.catalogue.tls import TlsOptions
from berth_common.values import DNS_LABEL_RE, route_path
from berth_proxy_sync.domain import tls as tls_domain

SENTINEL_FILE = "000-berth-sentinel.yml"
MANAGED_MARKER = "# managed by berth proxy-sync: derived from the proxy schema, rewritten at start\n"
NAME_PREFIX = "route-"
SENTINEL_NAME = "berth-sentinel"
API_ROUTER = "berth-api"  # Traefik's API, on its own entry point, for proxy-sync only
API_AUTH = "berth-api-auth"
API_USER = "proxy-sync"
API_ENTRY_POINT = "traefik"  # berth_common.traefik.static_config's entry point of the API and /ping

ROUTE_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
ENTRY_POINT_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_LABEL_RE = DNS_LABEL_RE
MAX_HOSTS = 100
# libyaml's emitter when present (the same text as the pure-Python one, a fraction of its CPU: a batch
# renders many route files)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
MAX_UPSTREAMS = 256


class RouteError(ValueError):
    """A route that must never reach Traefik (bad host, upstream, id, or a host claimed twice)."""


def check_hostname(host: str) -> str:
    """An RFC 1123 host name, or a wildcard ``*.<name>`` (one label; at least two labels after it),
    lowercased; anything else (ports, backticks, a final dot, a ``*`` anywhere else) is refused."""
    if not isinstance(host, str) or not host or len(host) > 253:
        raise RouteError(f"invalid host name {host!r}: 1 to 253 characters")
    lowered = host.lower()
    labels = lowered.split(".")
    if labels[0] == "*":
        if len(labels) < 3:
            raise RouteError(f"invalid host name {host!r}: a wildcard names two labels or more after '*.'")
        labels = labels[1:]
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise RouteError(
                f"invalid host name {host!r}: each label is 1-63 letters, digits or '-', not starting or ending with '-'"
            )
    return lowered


def check_route_id(route_id: str) -> str:
    if not isinstance(route_id, str) or not ROUTE_ID_RE.fullmatch(route_id):
        raise RouteError(f"invalid route id {route_id!r}: lowercase letters, digits, '-' and '_', 1-64 characters")
    if file_name(route_id) == SENTINEL_FILE or route_id.startswith("000-berth"):
        raise RouteError(f"route id {route_id!r} is reserved")
    return route_id


def check_entry_point(name: str) -> str:
    if not isinstance(name, str) or not ENTRY_POINT_RE.fullmatch(name):
        raise RouteError(f"invalid entry point {name!r}")
    return name


def check_upstream(url: str) -> str:
    """``http(s)://host:port`` with an explicit port, no credentials, path, query or fragment; normalised."""
    if not isinstance(url, str) or len(url) > 300 or any(c.isspace() or c in "`\\\"'" for c in url):
        raise RouteError(f"invalid upstream {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RouteError(f"invalid upstream {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise RouteError(f"invalid upstream {url!r}: the scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        raise RouteError(f"invalid upstream {url!r}: credentials are not allowed")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise RouteError(f"invalid upstream {url!r}: no path, query or fragment")
    if port is None or not 1 <= port <= 65535:
        raise RouteError(f"invalid upstream {url!r}: an explicit port is required")
    host = parts.hostname or ""
    try:
        ip = ipaddress.ip_address(host)
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    except ValueError:
        host = check_hostname(host)
    return f"{parts.scheme}://{host}:{port}"


def check_path(path: str | None) -> str | None:
    """A route's path prefix (``berth_common.values.route_path``); ``/`` and None: the whole host (None)."""
    if path is None:
        return None
    try:
        checked = route_path(path)
    except ValueError as exc:
        raise RouteError(f"invalid path {path[:210]!r}: {exc}") from None
    return None if checked == "/" else checked


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return tuple(seen)


@dataclass(frozen=True)
class Route:
    """The desired state of one route: every host goes to the load-balanced upstream servers."""

    route_id: str
    hosts: tuple[str, ...]
    upstreams: tuple[str, ...]
    entry_point: str = "web"
    generation: int = 0
    tls: TlsOptions | None = field(default=None, hash=False)  # HTTPS for the hosts (None: HTTP only)
    buffering: RequestBuffering | None = field(default=None, hash=False)  # requests read whole (None: streamed)
    path: str | None = None  # the URL path prefix served on the hosts (None: the whole hosts)

    @classmethod
    def create(
        cls,
        route_id: str,
        hosts: Iterable[str],
        upstreams: Iterable[str],
        entry_point: str = "web",
        generation: int = 0,
        tls: TlsOptions | None = None,
        buffering: RequestBuffering | None = None,
        path: str | None = None,
    ) -> Route:
        """Validate and normalise (hosts lowercased, sorted, de-duplicated; upstreams normalised, in order;
        a path ``/``: None)."""
        hosts_t = tuple(sorted(_unique(check_hostname(h) for h in hosts)))
        path = check_path(path)
        if path is not None and any(tls_domain.is_wildcard(h) for h in hosts_t):
            raise RouteError("a route with a path serves named hosts only, no wildcard")
        ups_t = _unique(check_upstream(u) for u in upstreams)
        if not hosts_t or len(hosts_t) > MAX_HOSTS:
            raise RouteError(f"a route needs 1 to {MAX_HOSTS} hosts")
        if not ups_t or len(ups_t) > MAX_UPSTREAMS:
            raise RouteError(f"a route needs 1 to {MAX_UPSTREAMS} upstreams (remove the route to stop serving it)")
        if generation < 0:
            raise RouteError("generation must be >= 0")
        tls = tls if tls is not None and tls.enabled() else None
        rid, entry = check_route_id(route_id), check_entry_point(entry_point)
        return cls(rid, hosts_t, ups_t, entry, generation, tls, buffering, path)

    @property
    def name(self) -> str:
        """The router and the service name (they live in different namespaces)."""
        return router_name(self.route_id)

    @property
    def file_name(self) -> str:
        return file_name(self.route_id)

    @property
    def rule(self) -> str:
        """The rule of the route's own router: its named hosts (under its path), or its wildcards when it
        has no other."""
        named, wild = tls_domain.split_wildcards(self.hosts)
        return tls_domain.with_path(host_rule(named), self.path) if named else tls_domain.wildcard_rule(wild)

    @property
    def claims(self) -> tuple[str, ...]:
        """What the route claims on its servers: each host, under its path when it has one
        (``example.com/api``): two routes may serve one host under different paths, never one host and path."""
        return self.hosts if self.path is None else tuple(f"{h}{self.path}" for h in self.hosts)


def router_name(route_id: str) -> str:
    return NAME_PREFIX + route_id


def file_name(route_id: str) -> str:
    return f"{route_id}.yml"


def host_rule(hosts: Iterable[str]) -> str:
    return " || ".join(f"Host(`{check_hostname(h)}`)" for h in hosts)


def route_config(route: Route) -> dict[str, Any]:
    """The dynamic configuration of one route file. Wildcard hosts are matched by a router of their own
    (``<name>-wildcard``; the route's own router when it has no other host) after every named host's
    (``tls.WILDCARD_PRIORITY``)."""
    name = route.name
    named, wild = tls_domain.split_wildcards(route.hosts)
    routers: dict[str, Any] = {name: {"rule": route.rule, "service": name, "entryPoints": [route.entry_point]}}
    if route.path is not None:
        routers[name]["priority"] = tls_domain.path_priority(route.path)
    elif wild and not named:
        routers[name]["priority"] = tls_domain.WILDCARD_PRIORITY
    elif wild:
        routers[f"{name}-wildcard"] = {
            "rule": tls_domain.wildcard_rule(wild),
            "service": name,
            "entryPoints": [route.entry_point],
            "priority": tls_domain.WILDCARD_PRIORITY,
        }
    return {
        "http": {
            "routers": routers,
            "services": {
                name: {
                    "loadBalancer": {
                        "passHostHeader": True,
                        "servers": [{"url": url} for url in route.upstreams],
                    }
                }
            },
        }
    }


def buffering_middleware(max_bytes: int) -> dict[str, Any]:
    """Traefik's ``buffering`` of a route: a request body up to ``max_bytes`` (in memory up to 1 MiB, then
    in a temporary file), a larger one answered 413; any answer passes whole (no response limit: 0), held
    in memory up to 1 MiB, then in a temporary file."""
    return {
        "buffering": {
            "maxRequestBodyBytes": max_bytes,
            "memRequestBodyBytes": min(max_bytes, MEM_BODY_BYTES),
            "maxResponseBodyBytes": 0,
            "memResponseBodyBytes": MEM_BODY_BYTES,
        }
    }


def with_buffering(config: dict[str, Any], name: str, max_bytes: int) -> dict[str, Any]:
    """``config`` with the buffering middleware ``<name>-buffering`` first on every router."""
    mw = f"{name}-buffering"
    http = dict(config["http"])
    http["routers"] = {
        r: {**router, "middlewares": [mw, *router.get("middlewares", [])]} for r, router in http["routers"].items()
    }
    http["middlewares"] = {**http.get("middlewares", {}), mw: buffering_middleware(max_bytes)}
    return {**config, "http": http}


def full_config(
    route: Route, site: tls_domain.TlsSite | None = None, states: tls_domain.HostStates | None = None
) -> dict[str, Any]:
    """The route's configuration with its HTTPS part (``domain/tls.py``) when it has TLS options and the
    site serves HTTPS (``site``); ``states``: what is known of its hosts (none cleared, none certified)."""
    config = route_config(route)
    if route.tls is not None and site is not None:
        extra = tls_domain.tls_config(
            route.name, route.hosts, route.tls, site, states or tls_domain.HostStates(), path=route.path
        )
        config = tls_domain.merge(config, extra)
    if route.buffering is not None:
        config = with_buffering(config, route.name, route.buffering.max_body_bytes)
    return config


def other_routers(
    route: Route, site: tls_domain.TlsSite | None, states: tls_domain.HostStates | None
) -> tuple[str, ...]:
    """The route's routers besides its own (wildcards, HTTPS, redirects): Traefik must show them enabled too."""
    return tuple(sorted(n for n in full_config(route, site, states)["http"]["routers"] if n != route.name))


def render(route: Route, site: tls_domain.TlsSite | None = None, states: tls_domain.HostStates | None = None) -> str:
    """The exact bytes (as text) of ``<route_id>.yml``: deterministic, so unchanged routes rewrite identically."""
    config = full_config(route, site, states)
    return MANAGED_MARKER + yaml.dump(config, Dumper=_DUMPER, sort_keys=True, default_flow_style=False)


def api_password(secret_key: str) -> str:
    """The password of Traefik's API, derived from the platform's secret key: every proxy-sync of the
    platform knows it, nothing else does, and no server holds more than its hash."""
    return hmac.new(secret_key.encode(), b"berth traefik api", hashlib.sha256).hexdigest()


def api_user_entry(password: str) -> str:
    """The htpasswd line Traefik checks: the SHA-1 form, cheap on every poll (the password is 256 random
    bits, so a fast hash gives nothing to guess from)."""
    digest = base64.b64encode(hashlib.sha1(password.encode(), usedforsecurity=False).digest()).decode()
    return f"{API_USER}:{{SHA}}{digest}"


def sentinel_config(api_password: str) -> dict[str, Any]:
    """The sentinel: a router for a host that cannot exist (``.invalid``) to a closed port, on ``web``;
    Traefik's API on its entry point for the holder of ``api_password`` only (the header is removed
    before the API sees it); and the web entry points' body reader (``berth_common.traefik_body``), which
    the static configuration names."""
    return {
        "http": {
            "routers": {
                SENTINEL_NAME: {
                    "rule": f"Host(`{SENTINEL_NAME}.invalid`)",
                    "service": SENTINEL_NAME,
                    "entryPoints": ["web"],
                },
                API_ROUTER: {
                    "rule": "PathPrefix(`/api`)",
                    "service": "api@internal",
                    "entryPoints": [API_ENTRY_POINT],
                    "middlewares": [API_AUTH],
                },
            },
            "middlewares": {
                API_AUTH: {"basicAuth": {"users": [api_user_entry(api_password)], "removeHeader": True}},
                traefik_body.ENTRY_MIDDLEWARE: traefik_body.middleware(),
            },
            "services": {SENTINEL_NAME: {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}},
        }
    }


def render_sentinel(api_password: str) -> str:
    """The exact text of ``000-berth-sentinel.yml`` (JSON, which Traefik reads as YAML)."""
    return json.dumps(sentinel_config(api_password), indent=2)


def check_host_conflicts(routes: Iterable[Route]) -> None:
    """Refuse one host (under one path) claimed by two routes (Traefik would pick one by rule length, silently)."""
    owner: dict[str, str] = {}
    for route in routes:
        for host in route.claims:
            if owner.setdefault(host, route.route_id) != route.route_id:
                raise RouteError(f"host {host!r} is claimed by routes {owner[host]!r} and {route.route_id!r}")


def render_files(routes: Iterable[Route]) -> dict[str, dict[str, Any]]:
    """The desired routes of one application environment as ``{file name: configuration}``."""
    routes = list(routes)
    ids = [r.route_id for r in routes]
    if len(set(ids)) != len(ids):
        raise RouteError("a route id appears twice")
    check_host_conflicts(routes)
    return {r.file_name: full_config(r) for r in sorted(routes, key=lambda r: r.route_id)}


def route_id_of_file(name: str) -> str | None:
    """The route id a managed file name stands for, or None (sentinel, temp files, anything else)."""
    if name == SENTINEL_FILE or not name.endswith(".yml"):
        return None
    rid = name[: -len(".yml")]
    try:
        return check_route_id(rid)
    except RouteError:
        return None
