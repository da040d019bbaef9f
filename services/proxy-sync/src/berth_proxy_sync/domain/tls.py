"""HTTPS for a route: the Traefik dynamic configuration added to a route's file when it has TLS options.

Pure data, tested by exact comparison. A route without TLS options keeps exactly the HTTP-only file of
``domain/routes.py``. With them, the route's file (still one owner for every name, all names starting with
``route-<route_id>``) also holds:

- routers on the HTTPS entry point (``websecure``): the hosts covered by an uploaded certificate
  (``route-<id>-custom``: Traefik picks the certificate of ``tls.certificates`` by SNI) and the hosts given
  to the ACME resolver of the route's challenge (``route-<id>-acme``: Traefik asks its ACME server for
  them). A host goes to the ACME resolver only once proxy-sync found it resolves to its server
  (``HostStates.acme_ok``), so a typo never reaches the CA. A host that is the source of a ``www`` redirect
  has routers of its own (``-custom-www``, ``-acme-www``) carrying that redirect;
- the HTTP to HTTPS redirect (``route-<id>-to-https`` on ``web``): ``always`` for every host served over
  HTTPS, ``auto`` for those already served with a certificate (``HostStates.certified``), ``never`` for none;
- the ``www`` <-> apex redirect (``route-<id>-www``, a ``redirectRegex`` keeping scheme, port and path);
- HSTS (``route-<id>-hsts``, a ``headers`` middleware) on the HTTPS routers only;
- ``tls.certificates``: the uploaded certificates' files (written by proxy-sync, the key mode 0600).

The route's own router (``route-<id>`` on ``web``, every host) stays as it is; the redirect routers take
precedence over it by their explicit priority, below the one of Traefik's own ACME HTTP-01 challenge
router, so a redirected host still answers its challenges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from berth_common.catalogue.tls import CustomCertificate, TlsOptions
from berth_common.traefik import RESOLVERS, WEBSECURE

REDIRECT_PRIORITY = 1_000_000  # above any host rule's length (Traefik's default priority), below ACME's own
# A wildcard host's routers come after every named host's (whose priority is its rule's length): another
# route's ``api.example.com`` wins over a ``*.example.com`` route; its HTTP redirect after that.
WILDCARD_PRIORITY = 1
WILDCARD_REDIRECT_PRIORITY = 2
# a path route's priority (plus its path's length): above every whole-host rule's length (Traefik's default
# priority: at most 100 hosts of 253 characters), below the redirects'
PATH_PRIORITY = 500_000
WILDCARD_PROBE_LABEL = "berth-probe"  # the name under a wildcard that is looked up and probed for it
DEFAULT_HTTPS_PORT = 443


@dataclass(frozen=True)
class TlsSite:
    """How one site's Traefik serves HTTPS: the public HTTPS port redirects name (443: not written), the
    folder it reads uploaded certificates from (as Traefik sees it), and whether it has a DNS-01 resolver."""

    certs_dir: str
    https_port: int = DEFAULT_HTTPS_PORT
    dns_resolver: bool = False


@dataclass(frozen=True)
class HostStates:
    """What proxy-sync knows of a route's hosts: cleared for ACME (they resolve to their server) and
    served with a certificate now."""

    acme_ok: frozenset[str] = frozenset()
    certified: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HostPlan:
    """Which of a route's hosts are served over HTTPS, how, and which are redirected."""

    custom: tuple[str, ...] = ()  # covered by an uploaded certificate
    acme: tuple[str, ...] = ()  # given to the ACME resolver
    to_https: tuple[str, ...] = ()  # redirected from HTTP to HTTPS
    www: dict[str, str] = field(default_factory=dict)  # source host -> target host

    @property
    def https(self) -> tuple[str, ...]:
        return tuple(sorted((*self.custom, *self.acme)))


@dataclass(frozen=True)
class Refresh:
    """An application's uploaded certificates as ``evt.certificates.changed`` set them: the whole set for
    its ``hosts`` then, ordered by ``revision``."""

    revision: int
    hosts: tuple[str, ...]
    certificates: tuple[CustomCertificate, ...]


def caught_up(tls: TlsOptions | None, route_hosts: Iterable[str], refresh: Refresh) -> TlsOptions | None:
    """A route's options with the certificates of a newer refresh of its application, narrowed to the
    route's hosts; None when they come from that refresh or a newer one, or it changes nothing served."""
    current = tls or TlsOptions()
    if current.certificates_revision >= refresh.revision:
        return None
    new = current.refreshed(refresh.hosts, refresh.certificates, refresh.revision).for_hosts(route_hosts)
    if _served(new) == _served(current):
        return None
    return new


def _served(tls: TlsOptions) -> list[tuple[str, tuple[str, ...], str]]:
    return [(c.certificate_id, tuple(c.hosts), c.chain_pem) for c in tls.certificates]


def certificate_file(certificate_id: str) -> str:
    """The base name of an uploaded certificate's files (``.crt``, ``.key``): derived from its id, so no
    id can name a path."""
    return "cert-" + hashlib.sha256(certificate_id.encode()).hexdigest()[:32]


def certificate_names(tls: TlsOptions | None) -> set[str]:
    """The file names of the uploaded certificates a route's options serve (``.crt`` and ``.key`` of each)."""
    bases = {certificate_file(c.certificate_id) for c in (tls.certificates if tls else ())}
    return {f"{b}.{ext}" for b in bases for ext in ("crt", "key")}


def custom_hosts(tls: TlsOptions) -> dict[str, str]:
    """``{host: certificate_id}`` of the hosts an uploaded certificate covers (the first one listed wins)."""
    covered: dict[str, str] = {}
    for cert in tls.certificates:
        for host in cert.hosts:
            covered.setdefault(host.lower(), cert.certificate_id)
    return covered


def acme_candidates(hosts: Iterable[str], tls: TlsOptions) -> list[str]:
    """The hosts of a route that would be given to the ACME resolver (before the DNS check)."""
    if not tls.acme:
        return []
    covered = custom_hosts(tls)
    return sorted(h for h in hosts if h not in covered)


def www_pairs(hosts: Iterable[str], www: str) -> dict[str, str]:
    """``{source: target}`` of the ``www`` redirect: both names must be hosts of the route."""
    names = set(hosts)
    if www == "to_www":
        return {h: f"www.{h}" for h in sorted(names) if f"www.{h}" in names}
    if www == "to_apex":
        return {h: h[4:] for h in sorted(names) if h.startswith("www.") and h[4:] in names}
    return {}


def plan(hosts: Iterable[str], tls: TlsOptions, states: HostStates) -> HostPlan:
    hosts = sorted(set(hosts))
    covered = custom_hosts(tls)
    custom = tuple(h for h in hosts if h in covered)
    acme = tuple(h for h in acme_candidates(hosts, tls) if h in states.acme_ok)
    https = set(custom) | set(acme)
    if tls.redirect == "always":
        to_https = tuple(h for h in hosts if h in https)
    elif tls.redirect == "auto":
        to_https = tuple(h for h in hosts if h in https and (h in custom or h in states.certified))
    else:
        to_https = ()
    return HostPlan(custom, acme, to_https, www_pairs(hosts, tls.www))


def _rule(hosts: Iterable[str]) -> str:
    return " || ".join(f"Host(`{h}`)" for h in hosts)


def with_path(rule: str, path: str | None) -> str:
    """A host rule narrowed to the requests under ``path`` (None: the rule as it is)."""
    return rule if path is None else f"({rule}) && PathPrefix(`{path}`)"


def path_priority(path: str) -> int:
    """The priority of a router under ``path``: a longer prefix first, all of them before whole-host routes."""
    return PATH_PRIORITY + len(path)


def is_wildcard(host: str) -> bool:
    return host.startswith("*.")


def split_wildcards(hosts: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the named hosts, the wildcard hosts), each in the given order."""
    hosts = tuple(hosts)
    return tuple(h for h in hosts if not is_wildcard(h)), tuple(h for h in hosts if is_wildcard(h))


def wildcard_rule(hosts: Iterable[str]) -> str:
    """Traefik v3's rule for wildcard hosts: ``*.example.com`` matches exactly one label (letters, digits,
    ``-``) before ``example.com``, any case (a Go regexp)."""
    return " || ".join(f"HostRegexp(`(?i)^[a-z0-9-]+\\.{_regex_host(h[2:])}$`)" for h in hosts)


def probe_name(host: str) -> str:
    """The name looked up and probed for ``host``: itself, or one name under a wildcard."""
    return f"{WILDCARD_PROBE_LABEL}{host[1:]}" if is_wildcard(host) else host


def _regex_host(host: str) -> str:
    return host.replace(".", "\\.")


def www_middleware(pairs: dict[str, str]) -> dict[str, Any]:
    """One ``redirectRegex`` for every pair (all one way: ``www_pairs``), scheme, port, path and query
    kept."""
    to_www = all(t == f"www.{s}" for s, t in pairs.items())
    apexes = "|".join(_regex_host(s if to_www else t) for s, t in sorted(pairs.items()))
    www = "" if to_www else "www\\."
    return {
        "redirectRegex": {
            "regex": f"^(https?)://{www}({apexes})(:[0-9]+)?(/.*)?$",
            "replacement": "${1}://www.${2}${3}${4}" if to_www else "${1}://${2}${3}${4}",
            "permanent": True,
        }
    }


def hsts_middleware(tls: TlsOptions) -> dict[str, Any]:
    headers: dict[str, Any] = {"stsSeconds": tls.hsts_max_age_s}
    if tls.hsts_subdomains:
        headers["stsIncludeSubdomains"] = True
    if tls.hsts_preload:
        headers["stsPreload"] = True
    return {"headers": headers}


def tls_config(
    name: str, hosts: Iterable[str], tls: TlsOptions, site: TlsSite, states: HostStates, path: str | None = None
) -> dict[str, Any]:
    """What a route's file gains for ``tls`` (``name``: the route's router and service name): routers,
    middlewares and certificates, to be merged with the route's HTTP configuration (``merge``). A route
    with a ``path`` has its HTTPS routers under it (its redirects stay whole-host)."""
    p = plan(hosts, tls, states)
    routers: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    https_mw: list[str] = []
    if tls.hsts_max_age_s > 0 and p.https:
        middlewares[f"{name}-hsts"] = hsts_middleware(tls)
        https_mw.append(f"{name}-hsts")
    www_sources = set(p.www)
    if p.www:
        middlewares[f"{name}-www"] = www_middleware(p.www)

    def https_router(suffix: str, group: tuple[str, ...], tls_part: dict[str, Any], www: bool) -> None:
        named, wild = split_wildcards(group)
        mw = [*https_mw, f"{name}-www"] if www else list(https_mw)
        if named:
            router: dict[str, Any] = {
                "rule": with_path(_rule(named), path),
                "service": name,
                "entryPoints": [WEBSECURE],
                "tls": tls_part,
            }
            if path is not None:
                router["priority"] = path_priority(path)
            if mw:
                router["middlewares"] = mw
            routers[f"{name}-{suffix}"] = router
        if wild:  # an ACME resolver cannot read the names from a regexp: they are given
            part = {**tls_part, "domains": [{"main": h} for h in wild]} if tls_part else {}
            router = {
                "rule": wildcard_rule(wild),
                "service": name,
                "entryPoints": [WEBSECURE],
                "tls": part,
                "priority": WILDCARD_PRIORITY,
            }
            if mw:
                router["middlewares"] = mw
            routers[f"{name}-{suffix}-wildcard"] = router

    resolver = {"certResolver": RESOLVERS[tls.challenge]} if tls.challenge != "dns-01" or site.dns_resolver else {}
    for suffix, group, part in (("custom", p.custom, {}), ("acme", p.acme, resolver)):
        https_router(suffix, tuple(h for h in group if h not in www_sources), part, False)
        https_router(f"{suffix}-www", tuple(h for h in group if h in www_sources), part, True)

    if p.to_https:
        scheme: dict[str, Any] = {"scheme": "https", "permanent": True}
        if site.https_port != DEFAULT_HTTPS_PORT:
            scheme["port"] = str(site.https_port)
        middlewares[f"{name}-to-https"] = {"redirectScheme": scheme}
        named, wild = split_wildcards(p.to_https)
        for suffix, rule, priority in (
            ("", _rule(named), REDIRECT_PRIORITY),
            ("-wildcard", wildcard_rule(wild), WILDCARD_REDIRECT_PRIORITY),
        ):
            if rule:
                routers[f"{name}-to-https{suffix}"] = {
                    "rule": rule,
                    "service": name,
                    "entryPoints": ["web"],
                    "middlewares": [f"{name}-to-https"],
                    "priority": priority,
                }
    http_www = tuple(h for h in sorted(www_sources) if h not in p.to_https)
    if http_www:
        routers[f"{name}-www"] = {
            "rule": _rule(http_www),
            "service": name,
            "entryPoints": ["web"],
            "middlewares": [f"{name}-www"],
            "priority": REDIRECT_PRIORITY,
        }
    config: dict[str, Any] = {}
    if routers or middlewares:
        config["http"] = {}
        if routers:
            config["http"]["routers"] = routers
        if middlewares:
            config["http"]["middlewares"] = middlewares
    used = {custom_hosts(tls)[h] for h in p.custom}
    files = [certificate_file(c.certificate_id) for c in tls.certificates if c.certificate_id in used]
    if files:
        config["tls"] = {
            "certificates": [
                {"certFile": f"{site.certs_dir}/{f}.crt", "keyFile": f"{site.certs_dir}/{f}.key"}
                for f in sorted(dict.fromkeys(files))
            ]
        }
    return config


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` (a route's HTTP configuration) with ``extra``'s sections added (names never overlap)."""
    out = {k: dict(v) for k, v in base.items()}
    for section, parts in extra.items():
        target = out.setdefault(section, {})
        for key, value in parts.items():
            if isinstance(value, dict):
                target[key] = {**target.get(key, {}), **value}
            else:
                target[key] = value
    return out
