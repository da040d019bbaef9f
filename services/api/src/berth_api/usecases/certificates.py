"""Custom certificates of a team: upload (checked by ``domain.certificates``, the key sealed at rest and
never returned), list, forget; and the certificates a deployment's snapshot carries
(``ApplicationSpec.tls.certificates``).

A certificate is the team's for the hosts it is given for, or one application's (``application_id``;
its hosts default to the application's hosts it covers). A deployment of an application carries, for each
of its hosts, the first certificate that lists the host: the application's own before the team's, the
newest first; expired ones are left out (the host then gets one from ACME when that is on).

Uploading or deleting one reaches what runs without a deployment: in the same transaction, each of the
team's applications with a host the certificate lists gets an ``evt.certificates.changed`` (through the
outbox) with the set its hosts are served with now, chosen as a deployment chooses it. proxy-sync applies
the routes of those hosts again on every server; the scheduler records the set in the application's
deployments. The revision orders the refreshes of one application (nanoseconds at the commit's side).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import certificates as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain import certificates as domain
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, name_taken, not_in_team
from berth_api.usecases import Deps
from berth_api.usecases.outbox import run
from berth_common.catalogue import CertificatesChanged, CustomCertificate
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class CertificateInput:
    name: str
    certificate: str
    chain: str
    key: str
    hosts: list[str]
    application_id: str | None = None

    def __repr__(self) -> str:
        return f"CertificateInput({self.name!r}, hosts={self.hosts!r}, key=**********)"


def certificate_missing(principal: Principal, certificate_id: str) -> ProblemError:
    return not_in_team("certificate", certificate_id, principal.team_name)


async def _hosts_for(s: AsyncSession, principal: Principal, given: CertificateInput) -> tuple[list[str], list[str]]:
    """(the hosts asked for, the application's hosts or [] for a team's certificate)."""
    if given.application_id is None:
        if not given.hosts:
            raise invalid_field("/body/hosts", "a team's certificate needs the hosts it is for")
        return given.hosts, []
    app = await apps_repo.get_application(s, principal.team_id, given.application_id)
    if app is None:
        raise invalid_field("/body/application_id", f"the team has no application {given.application_id}")
    own = [h.host for h in (await apps_repo.hosts_of(s, [app["id"]]))[app["id"]]]
    for i, host in enumerate(given.hosts):
        if host not in own:
            raise invalid_field(f"/body/hosts/{i}", f"{host} is not a host of application {app['id']}")
    return given.hosts, own


async def upload(deps: Deps, principal: Principal, given: CertificateInput) -> dict[str, Any]:
    """Check the certificate, seal its key, store it (422 naming what is wrong; the key is never echoed)."""
    from berth_api.domain import certificate_check  # cryptography's X.509: loaded at the first upload

    async with deps.sessionmaker() as s:
        hosts, own = await _hosts_for(s, principal, given)
    now = datetime.now(UTC)
    try:
        facts = await asyncio.to_thread(certificate_check.check, given.certificate, given.chain, given.key, hosts, now)
    except domain.CertificateRefused as exc:
        raise invalid_field(exc.field, exc.reason) from None
    if not hosts:  # an application's certificate: the application's hosts it covers
        hosts = [h for h in own if any(domain.covers(n, h) for n in facts.names)]
        if not hosts:
            raise invalid_field(
                "/body/certificate", f"the certificate covers none of the application's hosts ({', '.join(own)})"
            )
    certificate_id = new_id()
    key = certificate_check.normalised_key(given.key)

    async def body(unit: Unit) -> dict[str, Any]:
        s = unit.session
        await hold_for_sealing(s, deps.box)
        row = await repo.insert_certificate(
            s,
            {
                "id": certificate_id,
                "team_id": principal.team_id,
                "application_id": given.application_id,
                "name": given.name,
                "hosts": hosts,
                "names": list(facts.names),
                "chain_pem": facts.chain_pem,
                "sealed": deps.box.seal(key, row_aad("certificates", certificate_id)),
                "subject": facts.subject,
                "issuer": facts.issuer,
                "not_before": facts.not_before,
                "not_after": facts.not_after,
                "fingerprint_sha256": facts.fingerprint_sha256,
                "key_type": facts.key_type,
                "created_by": principal.user_id,
            },
        )
        await refresh(deps, unit, principal.team_id, hosts, given.application_id)
        return row

    try:
        row = await run(deps, body)
    except IntegrityError:
        raise name_taken("certificate", given.name) from None
    log.info("certificate uploaded", certificate_id=certificate_id, hosts=hosts, team_id=principal.team_id)
    return row


async def list_all(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        return await repo.list_certificates(s, principal.team_id)


async def get(deps: Deps, principal: Principal, certificate_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_certificate(s, principal.team_id, certificate_id)
    if row is None:
        raise certificate_missing(principal, certificate_id)
    return row


async def delete(deps: Deps, principal: Principal, certificate_id: str) -> None:
    """Forget a certificate: its hosts are served without it from now on (another certificate of theirs,
    ACME, or HTTP). The hosts' states that show it served are deleted with it (unless another of the team's
    certificates is the same one), and so are those saying an upload is not served for a host it listed that
    no other certificate of the team lists: each such host is ``pending`` until proxy-sync reports what
    serves it now."""

    async def body(unit: Unit) -> list[tuple[str, str]]:
        s = unit.session
        gone = await repo.delete_certificate(s, principal.team_id, certificate_id)
        if gone is None:
            raise certificate_missing(principal, certificate_id)
        forgotten = await repo.forget_failing(s, principal.team_id, list(gone["hosts"]))
        if not await repo.fingerprint_held(s, principal.team_id, gone["fingerprint_sha256"]):
            forgotten += await repo.forget_served(s, principal.team_id, gone["fingerprint_sha256"])
        await hold_for_sealing(s, deps.box)
        await refresh(deps, unit, principal.team_id, list(gone["hosts"]), gone["application_id"])
        return forgotten

    forgotten = await run(deps, body)
    log.info(
        "certificate removed",
        certificate_id=certificate_id,
        team_id=principal.team_id,
        states_cleared=[f"{host}@{server}" for host, server in forgotten],
    )


async def for_spec(
    deps: Deps, s: AsyncSession, team_id: str, application_id: str, hosts: list[str]
) -> list[CustomCertificate]:
    """The certificates a deployment of the application carries for its ``hosts`` (keys opened here, sealed
    again for the bus by the catalogue)."""
    now = datetime.now(UTC)
    rows = [r for r in await repo.serving(s, team_id, application_id) if r["not_after"] > now]
    chosen = domain.assign([(r["id"], r["hosts"]) for r in rows], hosts)
    out = []
    for row in rows:
        if row["id"] not in chosen:
            continue
        key = deps.box.open(row["sealed"], row_aad("certificates", row["id"]))
        out.append(
            CustomCertificate(
                certificate_id=row["id"], hosts=chosen[row["id"]], chain_pem=row["chain_pem"], key=SecretStr(key)
            )
        )
    return out


async def refresh(deps: Deps, unit: Unit, team_id: str, hosts: list[str], application_id: str | None) -> list[str]:
    """Inside ``unit``: an ``evt.certificates.changed`` for each application the certificate of ``hosts``
    serves (``application_id``'s only, for an application's own); their ids."""
    s = unit.session
    if application_id is not None:
        targets = [application_id]
    else:
        targets = await repo.applications_serving(s, team_id, hosts)
    own = await apps_repo.hosts_of(s, targets)
    for app_id in targets:
        names = [h.host for h in own[app_id]]
        if not names:
            continue
        certificates = await for_spec(deps, s, team_id, app_id, names)
        revision = time.time_ns()
        changed = CertificatesChanged(
            team_id=team_id, application_id=app_id, hosts=names, certificates=certificates, revision=revision
        )
        await unit.emit(changed, id=f"certificate-refresh-{app_id}-{revision}")
    return targets
