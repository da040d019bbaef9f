"""The certificate watch: what each HTTPS host is served with, looked at from outside, and told.

Sends ``evt.certificate.issued``, ``evt.certificate.failed`` (stages ``acme`` and ``custom``) and
``evt.certificate.expiring``. Every ``BERTH_CERT_WATCH_INTERVAL_S``, for each server with routes that have
TLS options, each host served over HTTPS is asked for its certificate in a TLS handshake with its name
(SNI) to the server's HTTPS port (the local one: ``BERTH_TLS_PROBE_HOST``:``BERTH_PROXY_TLS_PORT``), what
a browser would get:

- a certificate that covers the host and is not a default one, with a fingerprint not seen before:
  ``evt.certificate.issued`` (first issued, renewed, or an uploaded one now live); the route's file is
  written again when its HTTP redirect waits for the certificate (``redirect: auto``);
- none for longer than ``BERTH_CERT_ISSUE_TIMEOUT_S`` since the host asked for it:
  ``evt.certificate.failed`` once (stage ``acme``, or ``custom`` for an uploaded one Traefik does not serve);
  an ACME failure's reason carries the CA's answer from that server's Traefik log (the local log file, or a
  server's container log read through the Docker connection factory);
- one that ends within ``BERTH_CERT_EXPIRING_DAYS``: ``evt.certificate.expiring``, once per certificate
  (Traefik renews an ACME certificate when about a third of its lifetime is left, 30 days of 90, so this
  means renewal is not happening; a short-lived ACME certificate is told within a sixth of its lifetime,
  ``served.ACME_WARN_SHARE``).

A route served with an uploaded certificate that has ended is applied again without it (through the route
batcher, as a refresh is): its hosts get ACME certificates when ACME is on, else are served over HTTP only,
as the next deployment would choose; an ended upload is never served again (``cert_catchup`` leaves it
out of any route command proxy-sync takes).

Hosts that failed the DNS check are looked up again every few rounds; once they resolve to their server,
their route's file gives them to the ACME resolver. The states and the events are one transaction per
server (outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_common.bus.consumer import Delivery
from berth_common.catalogue import ApplyRoutes, CertificateExpiring, CertificateFailed, CertificateIssued
from berth_common.db import Unit
from berth_common.db.unit import run_unit
from berth_common.envelope import Envelope
from berth_common.logging import get_logger
from berth_proxy_sync.adapters import cert_repo, dns, repo, tls_probe
from berth_proxy_sync.adapters.sites import Site
from berth_proxy_sync.domain import served
from berth_proxy_sync.domain.routes import Route
from berth_proxy_sync.domain.tls import HostStates, plan, probe_name
from berth_proxy_sync.usecases.cert_refresh import reapplied
from berth_proxy_sync.usecases.https import Https
from berth_proxy_sync.usecases.routes import Routes
from berth_proxy_sync.usecases.sites import Sites, SiteUnavailable

log = get_logger(__name__)
DNS_RECHECK_ROUNDS = 5  # a host refused by the DNS check is looked up again every this many rounds


def _states(rows: dict[str, dict[str, Any]], route: Route, now: dt.datetime) -> HostStates:
    """The states of the route's hosts (a host's row is one route's; routes of one host by path share it)."""
    mine = {h: r for h, r in rows.items() if r["route_id"] == route.route_id or h in route.hosts}
    return HostStates(
        frozenset(h for h, r in mine.items() if r["dns_ok"]),
        frozenset(h for h, r in mine.items() if r["fingerprint"] and (r["not_after"] is None or r["not_after"] > now)),
    )


@dataclass
class CertificateWatch:
    sites: Sites
    routes: Routes
    https: Https
    bus: Bus
    sessionmaker: async_sessionmaker[AsyncSession]
    interval_s: float = 30.0
    issue_timeout_s: float = 300.0
    expiring_days: float = 14.0
    local_log: Path | None = None  # the local Traefik's log, where it writes the CA's answers
    rounds: int = 0
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="certificate-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.round()
            except Exception as exc:  # the next round tries again
                log.warning("certificate watch round failed", error=f"{type(exc).__name__}: {exc}")

    async def round(self) -> None:
        """Look at every HTTPS host of every server once."""
        self.rounds += 1
        async with self.sessionmaker() as session:
            servers = await cert_repo.servers_with_tls(session)
        for server_id in servers:
            await self.watch_server(server_id)

    async def watch_server(self, server_id: str) -> None:
        async with self.sessionmaker() as session:
            try:
                site = await self.sites.site(server_id, session)
            except SiteUnavailable as exc:
                log.info("certificate watch: server not reachable now", server_id=server_id, why=str(exc))
                return
            routes = [r for r in await repo.active_routes(session, server_id) if r.tls is not None]
            rows = await cert_repo.hosts(session, server_id)
        if site.probe is None or site.tls is None:
            return
        now = dt.datetime.now(dt.UTC)
        reapplied = await self._leave_out_ended(server_id, routes, rows, now)
        routes = [r for r in routes if r.route_id not in reapplied]  # watched as they are served from the next round
        seen: dict[str, served.Served | None] = {}
        for route in routes:
            assert route.tls is not None
            for host in plan(route.hosts, route.tls, _states(rows, route, now)).https:
                der = await tls_probe.leaf(site.probe[0], site.probe[1], probe_name(host))
                seen[host] = served.read(der) if der else None
        cleared = await self._recheck_dns(server_id, rows) if self.rounds % DNS_RECHECK_ROUNDS == 0 else set()
        refresh: set[str] = set()
        serving: dict[str, set[str]] = {}  # every route of a host (routes of one host by path)
        for route in routes:
            for host in route.hosts:
                serving.setdefault(host, set()).add(route.route_id)

        async def body(unit: Unit) -> None:
            for host, cert in sorted(seen.items()):
                row = rows.get(host)
                if row is not None and await self._judge(unit, site, host, row, cert, now):
                    refresh.update({str(row["route_id"]), *serving.get(host, ())})
            for host in cleared:
                await cert_repo.update(unit.session, server_id, host, {"dns_ok": True, "dns_reason": None})
                refresh.update({str(rows[host]["route_id"]), *serving.get(host, ())})

        await run_unit(self.bus, self.sessionmaker, body)
        if refresh:
            await self.routes.refresh(server_id, sorted(refresh))

    async def _leave_out_ended(
        self, server_id: str, routes: list[Route], rows: dict[str, dict[str, Any]], now: dt.datetime
    ) -> set[str]:
        """Apply again, without them, the routes served with an uploaded certificate that has ended (their
        hosts then get ACME certificates when ACME is on, else HTTP only); their ids. Each attempt is a
        command of its own: one Traefik did not confirm is tried again at the next round."""
        ended = [(route, served.ended_uploads(route.tls, now)) for route in routes]
        ended = [(route, ids) for route, ids in ended if ids]
        for route, ids in ended:
            assert route.tls is not None
            owner = next((r for r in rows.values() if r["route_id"] == route.route_id), {})
            cmd = reapplied(
                server_id,
                route,
                served.without_ended(route.tls, now),
                owner.get("team_id"),
                owner.get("application_id"),
            )
            log.info("uploaded certificate ended", server_id=server_id, route_id=route.route_id, certificates=ids)
            envelope = Envelope(
                id=f"ended-{uuid.uuid4().hex}-{server_id}-{route.route_id}"[:128],
                source="proxy-sync",
                type=ApplyRoutes.TYPE,
                data={},
            )
            await self.routes.apply(cmd, Delivery(envelope=envelope, headers={}, attempt=1, consumer="cert-watch"))
        if ended:
            await self.routes.prune_certificates(server_id)
        return {route.route_id for route, _ in ended}

    async def _judge(
        self,
        unit: Unit,
        site: Site,
        host: str,
        row: dict[str, Any],
        cert: served.Served | None,
        now: dt.datetime,
    ) -> bool:
        """Record what ``host`` is served with and stage its events; True when whether it has a certificate
        changed (its route's redirect may depend on it)."""
        server_id = site.server_id
        common = {
            "host": host,
            "server_id": server_id,
            "route_id": row["route_id"],
            "team_id": row["team_id"],
            "application_id": row["application_id"],
        }
        source: Literal["acme", "custom"] = "custom" if row["source"] == "custom" else "acme"
        if cert is not None and cert.serves(host, now):
            changed = bool(row["fingerprint"] != cert.fingerprint_sha256)
            if changed:
                await cert_repo.update(
                    unit.session,
                    server_id,
                    host,
                    {
                        "fingerprint": cert.fingerprint_sha256,
                        "issuer": cert.issuer,
                        "not_before": cert.not_before,
                        "not_after": cert.not_after,
                        "domains": list(cert.domains),
                        "waiting_since": None,
                        "failed_sent": False,
                    },
                )
                log.info(
                    "certificate served",
                    host=host,
                    server_id=server_id,
                    issuer=cert.issuer,
                    not_after=str(cert.not_after),
                )
                unit.stage(
                    CertificateIssued(
                        **common,
                        source=source,
                        issuer=cert.issuer,
                        not_before=cert.not_before,
                        not_after=cert.not_after,
                        domains=list(cert.domains),
                        fingerprint_sha256=cert.fingerprint_sha256,
                    )
                )
            days = served.expiring(cert, now, self.expiring_days, acme=source == "acme")
            if days is not None and row["expiring_sent"] != cert.fingerprint_sha256:
                await cert_repo.update(unit.session, server_id, host, {"expiring_sent": cert.fingerprint_sha256})
                unit.stage(
                    CertificateExpiring(
                        domain=host,
                        domains=list(cert.domains),
                        expires_at=cert.not_after,
                        days_left=days,
                        issuer=cert.issuer,
                        team_id=row["team_id"],
                        application_id=row["application_id"],
                        server_id=server_id,
                        reason="not renewed yet"
                        if source == "acme"
                        else "an uploaded certificate: upload its successor",
                    )
                )
            return changed
        had = bool(row["fingerprint"])
        waiting = row["waiting_since"] or now
        values: dict[str, Any] = {"waiting_since": waiting}
        if had:
            values.update(fingerprint=None)
        if not row["failed_sent"] and (now - waiting).total_seconds() >= self.issue_timeout_s:
            values["failed_sent"] = True
            what = (
                "the uploaded certificate is not served"
                if source == "custom"
                else "no certificate from the ACME server"
            )
            reason = (
                f"{what} for {host} after {int((now - waiting).total_seconds())}s "
                f"(presented: {cert.subject_cn if cert else 'no TLS handshake'})"
            )
            if source == "acme":
                answer = await self._traefik_reason(site, host)
                reason += f": {answer}" if answer else "; Traefik's log has the CA's answer"
            log.warning("certificate failed", host=host, server_id=server_id, stage=source, reason=reason)
            unit.stage(CertificateFailed(**common, source=source, stage=source, reason=reason[:2000]))
        await cert_repo.update(unit.session, server_id, host, values)
        return had

    async def _traefik_reason(self, site: Site, host: str) -> str | None:
        """The CA's answer for ``host`` from the Traefik log of the site: a server's container log (its
        last lines, through the Docker connection factory), or the local log file (its last 256 KiB)."""
        if site.read_log is not None:
            try:
                return served.acme_reason(await site.read_log(), host)
            except Exception as exc:  # the reason goes without the CA's answer: the event is still sent
                log.info("server Traefik log not read", server_id=site.server_id, why=f"{type(exc).__name__}: {exc}")
                return None
        if site.server_id != "local" or self.local_log is None:
            return None

        def tail(path: Path) -> str:
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - 262_144))
                return fh.read().decode(errors="replace")

        try:
            return served.acme_reason(await asyncio.to_thread(tail, self.local_log), host)
        except OSError:
            return None

    async def _recheck_dns(self, server_id: str, rows: dict[str, dict[str, Any]]) -> set[str]:
        """Hosts refused by the DNS check that now resolve to their server."""
        refused = [h for h, r in rows.items() if r["source"] == "acme" and r["dns_ok"] is False]
        if not refused:
            return set()
        async with self.sessionmaker() as session:
            expected = await self.https.expected(session, server_id)
        cleared = set()
        for host in refused:
            try:
                resolved = await dns.resolve(probe_name(host), self.https.dns_server, self.https.dns_timeout_s)
            except dns.DnsError:
                continue
            if expected and served.dns_problem(host, expected, resolved) is None:
                cleared.add(host)
        return cleared
