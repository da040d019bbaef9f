"""HTTPS of the routes: the DNS check before a host is given to the ACME resolver, the uploaded
certificates written for Traefik, and what is known of each host's certificate.

Carries out the HTTPS part of ``cmd.route.apply`` (``ApplyRoutes.tls``) and sends
``evt.certificate.failed`` with stage ``dns`` (the certificate watch, ``usecases/cert_watch.py``, sends
the others):

- Before a route change with ACME is batched, each host the ACME resolver would get is looked up (A and
  AAAA, through ``BERTH_TLS_DNS_SERVER`` or the system's resolver) and must resolve to the addresses of
  the server that serves it, and to nothing else (the local server: ``BERTH_TLS_SERVER_ADDRESSES``, else
  the machine's own addresses and ``BERTH_PUBLIC_ADDRESSES``, ``domain/addresses.py``; another server: its
  address in the server directory). A wildcard host is checked through one name under it
  (``berth-probe.example.com`` for ``*.example.com``: the wildcard DNS record answers it). A host that does not is left out of the ACME router (it is still
  served over HTTP) and ``evt.certificate.failed`` says what it resolved to; the CA is never asked.
  Without known server addresses the check is skipped (logged).
- An uploaded certificate's chain and key are written to the site's certificate folder before the route's
  file names them (``adapters/cert_files.py``); the key is opened from its seal there and nowhere else.
- The certificate state of each host is kept in ``certificates`` (same transaction as the route change).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from berth_common import fleet, sealing
from berth_common.catalogue import ApplyRoutes, CertificateFailed, RemoveRoute
from berth_common.db import Unit
from berth_common.logging import get_logger
from berth_proxy_sync.adapters import cert_repo, dns, tables
from berth_proxy_sync.adapters.cert_files import CertFiles
from berth_proxy_sync.adapters.sites import Site
from berth_proxy_sync.domain import served
from berth_proxy_sync.domain.routes import Route
from berth_proxy_sync.domain.tls import HostStates, acme_candidates, certificate_file, custom_hosts, probe_name

log = get_logger(__name__)

NAT_HINT = (
    " (the server's addresses are those its interfaces hold: behind NAT, set BERTH_PUBLIC_ADDRESSES to its"
    " public address)"
)


class CertificateUnusable(OSError):
    """An uploaded certificate's key does not open here (sealed with a key this service lacks): the route
    change fails with this reason, as when its file cannot be written."""


async def write_certificates(certs: CertFiles, route: Route) -> set[str]:
    """Write the uploaded certificates of ``route`` (chain, and key opened from its seal here); the file
    names."""
    names: set[str] = set()
    for cert in route.tls.certificates if route.tls is not None else ():
        name = certificate_file(cert.certificate_id)
        try:
            key = cert.reveal()
        except sealing.SealingError as exc:
            raise CertificateUnusable(
                f"the key of certificate {cert.certificate_id} does not open: {type(exc).__name__}"
            ) from None
        chain = cert.chain_pem if cert.chain_pem.endswith("\n") else cert.chain_pem + "\n"
        await certs.write(f"{name}.crt", chain)
        await certs.write(f"{name}.key", key)
        names.update((f"{name}.crt", f"{name}.key"))
    return names


async def sync_certificates(certs: CertFiles | None, routes: Sequence[Route]) -> int:
    """At a site's reconcile: the certificates of every active route written (one whose key does not open
    is logged and left out), the others' files removed; how many files were removed."""
    if certs is None:
        return 0
    wanted: set[str] = set()
    for route in routes:
        try:
            wanted |= await write_certificates(certs, route)
        except CertificateUnusable as exc:
            log.error("uploaded certificate not written", route_id=route.route_id, reason=str(exc))
    return sum([await certs.delete(n) for n in await certs.names() if n not in wanted])


@dataclass(frozen=True)
class HostCheck:
    """The DNS check of one host: cleared for ACME, or why not."""

    host: str
    ok: bool
    expected: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()
    reason: str = ""
    stage: Literal["dns", "acme"] = "dns"


@dataclass
class Https:
    server_addresses: Sequence[str] = ()  # the local server's public addresses
    dns_server: tuple[str, int] | None = None
    dns_timeout_s: float = 2.0
    dns_provider: bool = False  # a DNS-01 resolver is configured (BERTH_ACME_DNS_PROVIDER)
    addresses_found: bool = False  # server_addresses are the machine's own (not BERTH_TLS_SERVER_ADDRESSES)
    _warned: set[str] = field(default_factory=set)

    async def expected(self, session: AsyncSession, server_id: str) -> list[str]:
        """The addresses a host served by ``server_id`` must resolve to ([]: unknown)."""
        if server_id == fleet.LOCAL:
            return sorted(self.server_addresses)
        record = await fleet.server_of(session, tables.servers, server_id)
        if record is None:
            return []
        try:
            return [str(ipaddress.ip_address(record.host))]
        except ValueError:
            try:
                return await dns.resolve(record.host, self.dns_server, self.dns_timeout_s)
            except dns.DnsError:
                return []

    async def check(self, session: AsyncSession, msg: ApplyRoutes) -> dict[str, HostCheck]:
        """The DNS check of every host of ``msg`` the ACME resolver would get (empty without ACME)."""
        if msg.tls is None or not msg.tls.acme:
            return {}
        hosts = acme_candidates([h.lower() for h in msg.hosts], msg.tls)
        if not hosts:
            return {}
        if msg.tls.challenge == "dns-01" and not self.dns_provider:
            why = "DNS-01 needs a DNS provider: set BERTH_ACME_DNS_PROVIDER (and its credentials in BERTH_ACME_DNS_ENV)"
            return {h: HostCheck(h, False, reason=f"{h}: {why}", stage="acme") for h in hosts}
        expected = await self.expected(session, msg.server_id)
        if not expected:
            if msg.server_id not in self._warned:
                self._warned.add(msg.server_id)
                log.warning(
                    "no address known for the server: hosts are not checked before ACME", server_id=msg.server_id
                )
            return {h: HostCheck(h, True) for h in hosts}
        checks: dict[str, HostCheck] = {}
        for host in hosts:
            try:
                resolved = await dns.resolve(probe_name(host), self.dns_server, self.dns_timeout_s)
            except dns.DnsError as exc:
                checks[host] = HostCheck(host, False, tuple(expected), (), f"{host} could not be looked up: {exc}")
                continue
            problem = served.dns_problem(host, expected, resolved)
            if problem and self.addresses_found and msg.server_id == fleet.LOCAL:
                problem += NAT_HINT
            checks[host] = HostCheck(host, problem is None, tuple(expected), tuple(resolved), problem or "")
        return checks

    async def states(
        self, session: AsyncSession, server_id: str, routes: Sequence[Route], checks: dict[str, dict[str, HostCheck]]
    ) -> tuple[dict[str, HostStates], dict[str, HostStates]]:
        """(the states the database has, the states with this batch's DNS checks) of each route with TLS."""
        ids = [r.route_id for r in routes if r.tls is not None]
        stored = await cert_repo.host_states(session, server_id, ids)
        new = dict(stored)
        for route in routes:
            if route.tls is None or route.route_id not in checks:
                continue
            old = stored.get(route.route_id, HostStates())
            cleared = {h for h, c in checks[route.route_id].items() if c.ok}
            new[route.route_id] = HostStates(frozenset(cleared), old.certified)
        return stored, new

    async def write_certificates(self, site: Site, route: Route) -> None:
        """The uploaded certificates of ``route`` in the site's folder, before its file names them."""
        if site.certs is not None:
            await write_certificates(site.certs, route)

    async def record(
        self,
        session: AsyncSession,
        unit: Unit,
        server_id: str,
        msg: ApplyRoutes | RemoveRoute,
        route: Route | None,
        checks: dict[str, HostCheck],
    ) -> None:
        """The route's hosts in ``certificates`` (its gone hosts, or all of a removed route's, forgotten);
        ``evt.certificate.failed`` for each host the check refused."""
        if not isinstance(msg, ApplyRoutes) or route is None:
            await cert_repo.forget_route(session, server_id, msg.route_id)
            return
        tls = route.tls
        covered = custom_hosts(tls) if tls is not None else {}
        wanted: dict[str, dict[str, object]] = {}
        if tls is not None:
            for host in route.hosts:
                if host in covered:
                    wanted[host] = {"source": "custom", "dns_ok": None, "dns_reason": None}
                elif tls.acme:
                    check = checks.get(host)
                    ok = check is not None and check.ok  # not looked up yet: the watch looks it up
                    wanted[host] = {
                        "source": "acme",
                        "dns_ok": ok,
                        "dns_reason": None if ok else check.reason if check else None,
                    }
        await cert_repo.save_hosts(session, server_id, route.route_id, msg.team_id, msg.application_id, wanted)
        for host, check in sorted(checks.items()):
            if check.ok:
                continue
            log.warning(
                "host refused before ACME", host=host, server_id=server_id, route_id=route.route_id, reason=check.reason
            )
            unit.stage(
                CertificateFailed(
                    host=host,
                    server_id=server_id,
                    route_id=route.route_id,
                    team_id=msg.team_id,
                    application_id=msg.application_id,
                    source="acme",
                    stage=check.stage,
                    reason=check.reason[:2000],
                    expected_addresses=list(check.expected),
                    resolved_addresses=list(check.resolved),
                )
            )
