"""Database access for uploaded certificates (their sealed keys stay bytes here) and each host's
certificate state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import applications, hosts
from berth_api.adapters.tls_tables import certificate_states, certificates
from berth_api.domain.certificates import covers

SHOWN = [c for c in certificates.c if c.name not in ("sealed", "chain_pem")]  # what a listing shows


async def insert_certificate(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(certificates).values(**values).returning(*SHOWN))


async def list_certificates(
    session: AsyncSession, team_id: str, application_id: str | None = None
) -> list[dict[str, Any]]:
    q = sa.select(*SHOWN).where(certificates.c.team_id == team_id)
    if application_id is not None:
        q = q.where(certificates.c.application_id == application_id)
    return await all_rows(session, q.order_by(certificates.c.name))


async def get_certificate(session: AsyncSession, team_id: str, certificate_id: str) -> dict[str, Any] | None:
    q = sa.select(*SHOWN).where(certificates.c.team_id == team_id, certificates.c.id == certificate_id)
    return await first_row(session, q)


async def delete_certificate(session: AsyncSession, team_id: str, certificate_id: str) -> dict[str, Any] | None:
    """Delete one certificate; its ``hosts``, ``application_id`` and ``fingerprint_sha256`` (None: the team
    has no such one)."""
    c = certificates.c
    q = (
        sa.delete(certificates)
        .where(c.team_id == team_id, c.id == certificate_id)
        .returning(c.hosts, c.application_id, c.fingerprint_sha256)
    )
    return await first_row(session, q)


async def fingerprint_held(session: AsyncSession, team_id: str, fingerprint: str) -> bool:
    """Whether the team has a certificate with this fingerprint, its row locked against a deletion until the
    transaction ends (``FOR SHARE``: a deletion waits for it, or it sees the deletion committed)."""
    c = certificates.c
    q = sa.select(c.id).where(c.team_id == team_id, c.fingerprint_sha256 == fingerprint)
    return (await session.execute(q.with_for_update(read=True))).first() is not None


async def hosts_held(session: AsyncSession, team_id: str) -> list[str]:
    """The hosts the team's certificates list, their rows locked against a deletion until the transaction
    ends (``FOR SHARE``, as ``fingerprint_held``)."""
    q = sa.select(certificates.c.hosts).where(certificates.c.team_id == team_id).with_for_update(read=True)
    return [h for (listed,) in (await session.execute(q)).all() for h in listed]


async def forget_served(session: AsyncSession, team_id: str, fingerprint: str) -> list[tuple[str, str]]:
    """Delete the team's host states that show the uploaded certificate of ``fingerprint`` as served; the
    (host, server) pairs."""
    s = certificate_states.c
    q = (
        sa.delete(certificate_states)
        .where(s.team_id == team_id, s.source == "custom", s.fingerprint_sha256 == fingerprint)
        .returning(s.host, s.server_id)
    )
    return [(r.host, r.server_id) for r in (await session.execute(q)).all()]


async def forget_failing(session: AsyncSession, team_id: str, names: Sequence[str]) -> list[tuple[str, str]]:
    """Delete the team's host states whose last word is that an uploaded certificate is not served (stage
    ``custom``, after any issue) for a host one of ``names`` covers and none of the team's certificates
    still lists (the deleted certificate was the one not served); the (host, server) pairs."""
    s = certificate_states.c
    failing = await session.execute(
        sa.select(s.host, s.server_id).where(
            s.team_id == team_id,
            s.source == "custom",
            s.error_stage == "custom",
            sa.or_(s.issued_at.is_(None), s.error_at > s.issued_at),
        )
    )
    held = await hosts_held(session, team_id)
    gone = [
        (r.host, r.server_id)
        for r in failing.all()
        if any(covers(n, r.host) for n in names) and not any(covers(h, r.host) for h in held)
    ]
    for host, server_id in gone:
        await session.execute(sa.delete(certificate_states).where(s.host == host, s.server_id == server_id))
    return gone


async def applications_serving(session: AsyncSession, team_id: str, host_names: Sequence[str]) -> list[str]:
    """The team's applications with a host among ``host_names``, or under one of its wildcards
    (``*.example.com``: every ``<label>.example.com`` host)."""
    exact = [h for h in host_names if not h.startswith("*.")]
    under = [h[1:] for h in host_names if h.startswith("*.")]  # ".example.com"
    if not exact and not under:
        return []
    matches: list[sa.ColumnElement[bool]] = [hosts.c.host.in_(exact)] if exact else []
    matches += [hosts.c.host.endswith(suffix, autoescape=True) for suffix in under]
    q = (
        sa.select(hosts.c.application_id, hosts.c.host)
        .join(applications, applications.c.id == hosts.c.application_id)
        .where(applications.c.team_id == team_id, sa.or_(*matches))
        .order_by(hosts.c.application_id)
    )
    found = set()
    for r in (await session.execute(q)).all():  # one label under the wildcard, not more
        if r.host in exact or any(covers(w, r.host) for w in host_names if w.startswith("*.")):
            found.add(str(r.application_id))
    return sorted(found)


async def serving(session: AsyncSession, team_id: str, application_id: str) -> list[dict[str, Any]]:
    """The team's certificates an application may be served with, with their sealed keys, in order of
    preference: the application's own first, then the team's; the newest first within each."""
    c = certificates.c
    q = (
        sa.select(certificates)
        .where(c.team_id == team_id, sa.or_(c.application_id == application_id, c.application_id.is_(None)))
        .order_by(c.application_id.is_(None), sa.desc(c.created_at), c.id)
    )
    return await all_rows(session, q)


# --- certificate state per host ----------------------------------------------------------------------


async def state_of(session: AsyncSession, host: str, server_id: str) -> dict[str, Any] | None:
    q = sa.select(certificate_states).where(
        certificate_states.c.host == host, certificate_states.c.server_id == server_id
    )
    return await first_row(session, q.with_for_update())


async def upsert_state(session: AsyncSession, host: str, server_id: str, values: dict[str, Any]) -> None:
    stmt = insert(certificate_states).values(host=host, server_id=server_id, **{"domains": [], **values})
    changes = {**values, "updated_at": sa.func.now()}
    await session.execute(stmt.on_conflict_do_update(index_elements=["host", "server_id"], set_=changes))


async def states_for(session: AsyncSession, team_id: str, host_names: Sequence[str]) -> list[dict[str, Any]]:
    """The state rows of ``host_names`` the team may see (the event named the team, or no team)."""
    if not host_names:
        return []
    s = certificate_states.c
    q = (
        sa.select(certificate_states)
        .where(s.host.in_(list(host_names)), sa.or_(s.team_id == team_id, s.team_id.is_(None)))
        .order_by(s.host, s.server_id)
    )
    return await all_rows(session, q)
