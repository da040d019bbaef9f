"""The ports applications publish on the servers (api_0032): one row per (server, port, protocol), claimed by
one application (``usecases/published_ports.py``); a row goes with its application."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.tables import applications, metadata

published_ports = sa.Table(
    "published_ports",
    metadata,
    sa.Column("server_id", sa.String(64), primary_key=True),  # ``local``: the built-in server
    sa.Column("port", sa.Integer, primary_key=True),
    sa.Column("protocol", sa.String(3), primary_key=True),
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    sa.Column("service", sa.String(32), nullable=False),
    sa.CheckConstraint("protocol IN ('tcp', 'udp')", name="published_ports_protocol"),
    sa.CheckConstraint("port BETWEEN 1 AND 65535", name="published_ports_port"),
    sa.Index("published_ports_application", "application_id"),
)

Key = tuple[str, int, str]  # (server id, port, protocol)


@dataclass(frozen=True)
class Holder:
    """The application that holds a published port."""

    application_id: str
    name: str
    team_id: str
    service: str


async def holders(session: AsyncSession, keys: Iterable[Key], application_id: str | None) -> dict[Key, Holder]:
    """Which of ``keys`` another application than ``application_id`` holds, and who holds each."""
    wanted = set(keys)
    if not wanted:
        return {}
    servers = sorted({k[0] for k in wanted})
    q = (
        sa.select(
            published_ports.c.server_id,
            published_ports.c.port,
            published_ports.c.protocol,
            published_ports.c.service,
            applications.c.id,
            applications.c.name,
            applications.c.team_id,
        )
        .select_from(published_ports.join(applications, applications.c.id == published_ports.c.application_id))
        .where(published_ports.c.server_id.in_(servers))
    )
    if application_id is not None:
        q = q.where(published_ports.c.application_id != application_id)
    out = {}
    for r in (await session.execute(q)).all():
        key = (r.server_id, r.port, r.protocol)
        if key in wanted:
            out[key] = Holder(r.id, r.name, r.team_id, r.service)
    return out


async def replace(session: AsyncSession, application_id: str, rows: Iterable[tuple[Key, str]]) -> None:
    """The application's published ports are ``rows`` ((server, port, protocol), service), and no others."""
    await session.execute(sa.delete(published_ports).where(published_ports.c.application_id == application_id))
    values = [
        {"server_id": k[0], "port": k[1], "protocol": k[2], "application_id": application_id, "service": svc}
        for k, svc in rows
    ]
    if values:
        await session.execute(sa.insert(published_ports), values)
