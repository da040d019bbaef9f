"""A normalised compose model (``docker-compose config --format json``) as Berth's application: pure.

The translation holds the services in the file's order (``services.py`` for one), the start order their
``depends_on`` asks for (layers: every service of a layer starts after the services of the layers before it
are started, healthy or completed as their condition says), the restart policy and stop timeout of the
application, and ``notes``: every key accepted but not carried, by name. Anything Berth cannot carry is
refused with a ``ComposeRefusal`` naming the spot, never dropped.

- Names: a compose service ``plausible_db`` is Berth's service ``plausible-db`` (a slug: it is part of
  container names); its compose name is kept in ``aliases`` (the name other services reach it by).
- Hosts: which service and port get a host (and a URL path prefix: ``path``, one per routed port of a
  service, ``/`` the whole host) is set per application (``HostMap``); without any, the first
  service in the file with a published or exposed port gets the generated host at its first port (for a
  team allowed published ports, ``published_ports.py``: with an exposed or unpublished port). Those
  services are Berth web services (the normal rolling rollout); every other service is a worker. A host
  may give another port of a service than its first host's (MinIO's API and console): on a named host of
  its own or, without one, a generated host of that port (``generated``), under a path of its own
  (an API port under ``/api``), a port the service declares when it declares any
  (``ports``, ``expose``; Coolify's templates name theirs in ``SERVICE_URL_<NAME>_<PORT>`` only)
  (``port_hosts`` of the service). One host may give two ports of a service under two paths (the web port
at ``/``, the API port at ``/api``: ``shared_hosts`` of the service, the hosts its own port keeps). Two
routes of the application on one host and path are refused.
- Named volumes are Berth volumes (``berth-<application id>-<name>``, kept across deployments). A volume
  of one service with one replica is single-writer, so that service deploys with ``strategy: recreate``.
- Files: a bind mount of ``./files/<path>`` is the application's file of that path (or its files under
  that directory), given in ``compose.files``: ``files`` of the service; any other relative path is refused.
- Networks: the application has one private network; every compose network is mapped onto it, but those
  with ``internal: true``, mapped onto its internal network (``internal_networks``); its subnet, MTU and
  pinned addresses: ``network_options``. Volumes' ``driver_opts``: ``volume_options``.
- Secret variables: only inside environment values, kept as parts naming them (``secret_refs``).
- A service compose does not start (``profiles``) is not deployed; ``volumes_from``: ``volumes_from.py``.
- Restart policy: ``restart`` or ``deploy.restart_policy`` (``restarts``), with ``on-failure``'s retries.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from berth_api.domain import names
from berth_api.domain.compose import (
    aliases as aliases_of,
)
from berth_api.domain.compose import (
    internal_networks,
    keys,
    network_options,
    profiles,
    secret_files,
    secret_refs,
    volume_options,
    volumes_from,
)
from berth_api.domain.compose import (
    restarts as restarts_of,
)
from berth_api.domain.compose.keys import ComposeRefusal, not_carried, present
from berth_api.domain.compose.published_ports import Ranges, unpublished_ports
from berth_api.domain.compose.services import Context, Route, translate_service

MAX_SLUG = 32  # services and volumes, as application names (``berth_common.values.slug``)
PORT_RE = re.compile(r"^(\d{1,5})(?:/tcp)?$")


@dataclass(frozen=True)
class HostMap:
    """A host for a compose service's port; ``host`` None: the generated host only; ``path``: the URL path
    prefix the service serves on its hosts (None or ``/``: the whole hosts)."""

    service: str
    port: int
    host: str | None = None
    path: str | None = None
    buffer_mb: int | None = None  # ``buffer_requests.max_body_mb``: the service's requests read whole first


@dataclass(frozen=True)
class Policy:
    """What the administrator allows: host paths for bind mounts and dangerous keys (for the team)."""

    bind_allow: tuple[str, ...] = ()
    allowed: frozenset[str] = frozenset()
    has_repository: bool = False
    files: frozenset[str] = frozenset()  # the paths of the application's files (``compose.files``)
    published: Ranges | None = None  # the ports the team may publish on the server (None: not allowed)
    runtimes: frozenset[str] = frozenset()  # the container runtimes the team may ask for (``runtime``)


def berth_name(name: str) -> str:
    """A compose name as a Berth slug: lowercase, ``_`` and ``.`` as ``-``, at most 32 (``short_name``)."""
    return short_name(re.sub(r"[_.]", "-", name.lower()))


def short_name(slug: str) -> str:
    """A slug longer than Berth's 32 characters cut to 25 and made unique by a hash of the whole one."""
    if len(slug) <= MAX_SLUG:
        return slug
    return f"{slug[: MAX_SLUG - 7].rstrip('-')}-{hashlib.sha256(slug.encode()).hexdigest()[:6]}"


def _slugs(found: Iterable[str], what: str, notes: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    taken: dict[str, str] = {}
    for name in found:
        slug = berth_name(name)
        if len(name) > MAX_SLUG:
            reached = ", reached by its compose name" if what == "services" else ""
            notes.append(f"{what}/{name}: named {slug} in Berth (names are at most {MAX_SLUG} characters){reached}")
        try:
            names.slug(slug)
        except ValueError as exc:
            raise ComposeRefusal(f"{what}/{name}", f"a name Berth can use: {exc}") from None
        if slug in taken:
            raise ComposeRefusal(f"{what}/{name}", f"{name} and {taken[slug]} are both {slug} in Berth")
        taken[slug] = name
        out[name] = slug
    return out


def _top_level(model: Mapping[str, Any], notes: list[str]) -> None:
    for key, value in model.items():
        if key not in keys.TOP_LEVEL and not key.startswith("x-") and present(value):
            raise not_carried(key)
    internal_networks.top_level(model, notes)


def declared_ports(svc: Mapping[str, Any]) -> list[int]:
    """The container ports a compose service declares, in the file's order: its ``ports`` targets, then
    what it ``expose``s."""
    found = [int(port["target"]) for port in svc.get("ports") or []]
    for exposed in svc.get("expose") or []:
        m = PORT_RE.match(str(exposed))
        if m:
            found.append(int(m.group(1)))
    return list(dict.fromkeys(found))


def _first_port(svc: Mapping[str, Any]) -> int | None:
    return next(iter(declared_ports(svc)), None)


def _more_port(i: int, h: HostMap, svc: Mapping[str, Any], known: Route, path: str | None) -> Route:
    """``known`` with the host ``h`` giving another port of its service: on named hosts of its own or (no
    host) a generated host of that port, under that port's own path; a port the service declares when it
    declares any (``ports``, ``expose``)."""
    declared = declared_ports(svc)  # none: its image's ports, unknown here (each routed port is checked ready)
    if declared and h.port not in declared:
        ports = ", ".join(str(p) for p in declared)
        raise ComposeRefusal(
            f"hosts/{i}/port",
            f"the service {h.service} declares no container port {h.port} (ports, expose: {ports}): a second "
            "routed port is one the service declares",
        )
    if h.port in known.more_paths and known.more_paths[h.port] != path:
        raise ComposeRefusal(
            f"hosts/{i}/path",
            f"Berth routes one path per port of a service ({known.more_paths[h.port] or '/'} already for port "
            f"{h.port} of {h.service})",
        )
    more = {p: list(hs) for p, hs in known.more.items()}
    more.setdefault(h.port, [])
    domains = list(known.domains)
    generated, shared = known.generated, known.shared
    if h.host is None:
        generated = tuple(dict.fromkeys((*generated, h.port)))
    elif h.host not in more[h.port]:
        if _own_host(known, h.host):  # the service's own port has it too, under another path
            shared = tuple(dict.fromkeys((*shared, h.host)))
        more[h.port].append(h.host)
        if h.host not in domains:
            domains.append(h.host)
    paths = {**known.more_paths, h.port: path}
    return replace(known, domains=domains, more=more, more_paths=paths, generated=generated, shared=shared)


def _own_host(route: Route, host: str) -> bool:
    """Whether ``host`` is routed to the service's own port (a named host no other port has, or shared)."""
    return host in route.shared or (host in route.domains and not any(host in hs for hs in route.more.values()))


def _same_route(i: int, h: HostMap, path: str | None, seen: dict[tuple[str, str], tuple[str, int]]) -> None:
    """Refuse a named host and path that another route of the application (another service, or another
    port of the service) already has: one route per host and path."""
    if h.host is None:
        return
    key = (h.host, path or "/")
    owner = seen.setdefault(key, (h.service, h.port))
    if owner != (h.service, h.port):
        under = "" if path is None else f" under the path {path}"
        raise ComposeRefusal(
            f"hosts/{i}/host",
            f"{h.host} is used twice in this application{under} (port {owner[1]} of {owner[0]} has it)",
        )


def _routes(
    services: Mapping[str, Any], order: list[str], hosts: list[HostMap], publishes: bool = False
) -> dict[str, Route]:
    if not hosts:  # ``publishes``: the team may publish ports, so a published one is not routed by default
        for name in order:
            port = next(iter(unpublished_ports(services[name])), None) if publishes else _first_port(services[name])
            if port is not None:
                return {name: Route(port)}
        return {}
    routes: dict[str, Route] = {}
    seen: dict[tuple[str, str], tuple[str, int]] = {}
    for i, h in enumerate(hosts):
        if h.service not in services:
            raise ComposeRefusal(f"hosts/{i}/service", f"the compose file has no service {h.service}")
        known = routes.get(h.service)
        path = None if h.path in (None, "/") else h.path
        if path is not None and h.host is not None and h.host.startswith("*."):
            raise ComposeRefusal(f"hosts/{i}/path", "a path is served on named hosts, not on a wildcard host")
        _same_route(i, h, path, seen)  # one host may give two ports of a service under two paths
        if known is not None and h.port != known.port:
            routes[h.service] = _more_port(i, h, services[h.service], known, path)
            continue
        if known is not None and known.path != path:
            raise ComposeRefusal(
                f"hosts/{i}/path",
                f"Berth routes one path per port of a service ({known.path or '/'} already for port {known.port} "
                f"of {h.service})",
            )
        domains = list(known.domains) if known else []
        if h.host is not None and h.host not in domains:
            domains.append(h.host)
        if known is None:
            routes[h.service] = Route(h.port, domains, path)
            continue
        shared = known.shared
        if h.host is not None and not _own_host(known, h.host) and h.host in known.domains:
            shared = (*shared, h.host)  # another port's host under another path: the own port's too
        routes[h.service] = replace(known, domains=domains, shared=shared)
    return _buffered(routes, hosts)


def _buffered(routes: dict[str, Route], hosts: list[HostMap]) -> dict[str, Route]:
    """The routes with the request buffering their entries ask for: one way per service (every entry of a
    service that names it names the same size)."""
    sizes: dict[str, int] = {}
    for i, h in enumerate(hosts):
        if h.buffer_mb is not None and sizes.setdefault(h.service, h.buffer_mb) != h.buffer_mb:
            raise ComposeRefusal(
                f"hosts/{i}/buffer_requests",
                f"Berth buffers one service's requests one way ({sizes[h.service]} MiB already for {h.service})",
            )
    return {name: replace(r, buffer_mb=sizes[name]) if name in sizes else r for name, r in routes.items()}


def _depends(name: str, svc: Mapping[str, Any], slugs: Mapping[str, str], notes: list[str]) -> list[Any]:
    out = []
    for dep, how in sorted((svc.get("depends_on") or {}).items()):
        spot = f"services/{name}/depends_on/{dep}"
        how = how or {}
        if dep not in slugs and how.get("required") is False:  # a service not deployed (``profiles``)
            notes.append(profiles.optional_dependency(spot, dep))
            continue
        condition = how.get("condition", "service_started")
        if condition not in keys.CONDITIONS:
            raise ComposeRefusal(f"{spot}/condition", f"one of {', '.join(keys.CONDITIONS)}")
        if how.get("required") is False:
            notes.append(f"{spot}/required: not carried: Berth waits for every dependency")
        if how.get("restart"):
            notes.append(f"{spot}/restart: not carried: a dependency's restart does not restart this service")
        out.append({"service": slugs[dep], "condition": condition})
    return out


def start_order(services: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Layers of service names: each after every service it depends on (raises on a cycle)."""
    pending = {s["name"]: {d["service"] for d in s.get("depends_on", [])} for s in services}
    layers: list[list[str]] = []
    done: set[str] = set()
    while pending:
        ready = [n for n in pending if pending[n] <= done]
        if not ready:
            cycle = " -> ".join(sorted(pending))
            raise ComposeRefusal("services", f"depends_on has a cycle between {cycle}")
        layers.append(ready)
        done.update(ready)
        for n in ready:
            del pending[n]
    return layers


def translate(
    model: Mapping[str, Any],
    order: list[str],
    *,
    hosts: list[HostMap] | None = None,
    policy: Policy | None = None,
    secrets_nonce: str | None = None,
    declared_profiles: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Berth's application of a normalised compose model (raises ``ComposeRefusal`` naming the spot).

    ``order``: the services in the file's order; ``secrets_nonce``: the nonce of the placeholders the parser
    interpolated for secret variables (``secret_refs``): environment values keep them as parts, anywhere
    else they are refused; ``declared_profiles``: each service's profiles as the file's text gives them
    (``profiles.declared``), named in the notes of a service that is not deployed.
    """
    policy = policy or Policy()
    notes: list[str] = []
    _top_level(model, notes)
    notes += profiles.not_deployed(order, model.get("services") or {}, declared_profiles or {})
    services: dict[str, Any] = volumes_from.expand(model.get("services") or {}, notes)
    if not services:
        raise ComposeRefusal("services", "a compose file needs at least one service")
    profiles.host_refusal(hosts or [], services, order, declared_profiles or {})
    order = [n for n in order if n in services] + sorted(set(services) - set(order))
    slugs = _slugs(order, "services", notes)
    volume_names = _slugs(model.get("volumes") or {}, "volumes", notes)
    pinned = volume_options.top_level(model, tuple(policy.bind_allow), notes)
    network = network_options.top_level(model)
    mounts: dict[str, int] = {}
    for svc in services.values():
        for m in {m.get("source") for m in svc.get("volumes") or [] if m.get("type") == "volume"}:
            mounts[m] = mounts.get(m, 0) + 1
    ctx = Context(
        names=slugs,
        routes=_routes(services, order, hosts or [], policy.published is not None),
        volume_names=volume_names,
        shared_volumes=frozenset(v for v, n in mounts.items() if n > 1),
        bind_allow=tuple(policy.bind_allow),
        allowed=policy.allowed,
        has_repository=policy.has_repository,
        notes=notes,
        files=policy.files,
        secrets=secret_files.top_level(model, notes),
        published=policy.published,
        host_dirs=pinned.host_dirs,
        runtimes=policy.runtimes,
    )
    linked = aliases_of.links(services, slugs)
    internal = internal_networks.internal_names(model)
    out, policies, grace = [], set(), 0.0
    for name in order:
        svc = services[name]
        spec = translate_service(name, svc, ctx)
        depends = _depends(name, svc, slugs, notes)
        if depends:
            spec["depends_on"] = depends
        aliases = aliases_of.aliases(name, svc, slugs[name])
        aliases += [a for a in linked.get(name, []) if a not in aliases]
        if aliases:
            spec["aliases"] = aliases
        spec["restart"], retries = restarts_of.restart(name, svc, notes)
        if retries is not None:
            spec["restart_retries"] = retries
        inside = internal_networks.placement(name, svc, internal, spec["kind"] == "web")
        if inside is not None:
            spec["internal_network"] = inside
        address = network_options.pinned_address(name, svc, network, internal)
        if address is not None:
            spec.update(ipv4_address=address, strategy="recreate")  # two containers cannot hold one address
        policies.add(spec["restart"])
        grace = max(grace, spec.get("stop_grace_s", 0.0))
        out.append(spec)
    result: dict[str, Any] = {"services": out, "start_order": start_order(out)}
    result["restart_policy"] = policies.pop() if len(policies) == 1 else "unless-stopped"
    if grace:
        result["stop_timeout_s"] = min(3600, math.ceil(grace))
    if pinned.options:
        result["volume_options"] = {volume_names[k]: v for k, v in pinned.options.items()}
    if network:
        result["network_options"] = network
    result["notes"] = notes
    if secrets_nonce is not None:
        secret_refs.carry(result, secrets_nonce)
    return result
