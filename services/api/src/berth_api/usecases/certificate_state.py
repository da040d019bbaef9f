"""The certificate state of each host: the projection of proxy-sync's ``evt.certificate.issued``,
``evt.certificate.failed`` and ``evt.certificate.expiring`` into ``certificate_states`` (one row per host
and server), and what ``GET /v1/applications/{id}/certificates`` shows of it.

Each handler runs once per message (``consume_once``: the message id is recorded in the transaction that
writes the row). ``issued`` records the certificate now served (issuer, dates, names, fingerprint, source);
an uploaded one only while the team still holds it (a report that comes after the certificate's deletion,
which deleted the states showing it, is dropped; the certificate row is locked ``FOR SHARE`` meanwhile, so
the deletion either waits for the report's commit and deletes its row, or is seen; a ``failed`` of an
uploaded certificate the same way, while one of the team's certificates lists the host);
``failed`` the last error (stage, reason, when) and keeps the certificate served before; ``expiring`` the
warning (days left, why it was not renewed). The status follows from which came last (``domain.tls``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import certificates as repo
from berth_api.domain import tls
from berth_api.domain.certificates import covers
from berth_api.domain.identity import Principal
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing
from berth_common.catalogue import CertificateExpiring, CertificateFailed, CertificateIssued
from berth_common.db import Unit
from berth_common.logging import get_logger

log = get_logger(__name__)


def _owner(msg: CertificateIssued | CertificateFailed | CertificateExpiring) -> dict[str, Any]:
    """The route owner the event names (kept when it names none)."""
    values: dict[str, Any] = {}
    if msg.team_id:
        values["team_id"] = msg.team_id
    if msg.application_id:
        values["application_id"] = msg.application_id
    return values


async def on_issued(msg: CertificateIssued, unit: Unit) -> None:
    if (
        msg.source == "custom"
        and msg.team_id
        and not await repo.fingerprint_held(unit.session, msg.team_id, msg.fingerprint_sha256)
    ):  # reported after its deletion (which cleared the hosts' states): never shown again
        log.info("report of a deleted certificate ignored", host=msg.host, server_id=msg.server_id)
        return
    values = {
        **_owner(msg),
        "source": msg.source,
        "issuer": msg.issuer,
        "not_before": msg.not_before,
        "not_after": msg.not_after,
        "domains": list(msg.domains),
        "fingerprint_sha256": msg.fingerprint_sha256,
        "issued_at": datetime.now(UTC),
    }
    await repo.upsert_state(unit.session, msg.host.lower(), msg.server_id, values)
    log.info("certificate issued", host=msg.host, server_id=msg.server_id, not_after=msg.not_after.isoformat())


async def on_failed(msg: CertificateFailed, unit: Unit) -> None:
    if msg.source == "custom" and msg.team_id:
        held = await repo.hosts_held(unit.session, msg.team_id)
        if not any(covers(h, msg.host) for h in held):  # no upload lists the host any more: it was deleted
            log.info("failure of a deleted certificate ignored", host=msg.host, server_id=msg.server_id)
            return
    values = {
        **_owner(msg),
        "error_stage": msg.stage,
        "error_reason": msg.reason,
        "error_at": datetime.now(UTC),
    }
    if msg.source == "custom":
        values["source"] = "custom"
    await repo.upsert_state(unit.session, msg.host.lower(), msg.server_id, values)
    log.info("certificate failed", host=msg.host, server_id=msg.server_id, stage=msg.stage)


async def on_expiring(msg: CertificateExpiring, unit: Unit) -> None:
    values = {
        **_owner(msg),
        "not_after": msg.expires_at,
        "expiring_days_left": msg.days_left,
        "expiring_reason": msg.reason,
        "expiring_at": datetime.now(UTC),
    }
    if msg.issuer:
        values["issuer"] = msg.issuer
    if msg.domains:
        values["domains"] = list(msg.domains)
    await repo.upsert_state(unit.session, msg.domain.lower(), msg.server_id, values)
    log.info("certificate expiring", host=msg.domain, server_id=msg.server_id, days_left=msg.days_left)


async def of_application(deps: Deps, principal: Principal, application_id: str) -> list[dict[str, Any]]:
    """Each host of the application with its certificate state on every server that reported one (a host
    nothing was reported about yet: once, ``pending``)."""
    async with deps.sessionmaker() as s:
        app = await apps_repo.get_application(s, principal.team_id, application_id)
        if app is None:
            raise application_missing(principal, application_id)
        hosts = [h.host for h in (await apps_repo.hosts_of(s, [application_id]))[application_id]]
        rows = await repo.states_for(s, principal.team_id, hosts)
    now = datetime.now(UTC)
    by_host: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_host.setdefault(row["host"], []).append(row)
    out = []
    for host in hosts:
        for row in by_host.get(host) or [None]:  # type: ignore[list-item]
            out.append(tls.state_view(host, row, now))
    return out
