"""The server directory each service keeps from ``evt.server.changed``: which servers exist and how to reach them.

The api owns a team's servers; the services that work on them (the scheduler runs containers there,
proxy-sync writes their Traefik files, metrics reads their engines, the builder builds there) each keep a
copy of what they need in their own schema, in the table :func:`servers_table` defines, and never read the
api's tables. :func:`record_change` applies one event: only a higher ``revision`` than the row's replaces
it, so redeliveries and late events never bring back an older state, and a removed server stays as a
``removed`` row (a tombstone) so an older change cannot bring it back. :func:`target_of` opens the sealed
private key where a connection is made, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common import sealing

if TYPE_CHECKING:
    from berth_common.catalogue import ServerChanged
    from berth_common.ssh import SshTarget

LOCAL = "local"
SERVER_NETWORK = "berth"  # the Docker network on a remote server shared by its Traefik and the replicas
USABLE = ("ready", "unreachable", "draining")  # states in which a server may be connected to


class ServerNotUsable(Exception):
    """A server is unknown here, removed, not validated yet, or has no pinned host key: nothing connects."""


def servers_table(metadata: sa.MetaData, name: str = "servers") -> sa.Table:
    """The directory table in a service's schema (each service's ``adapters/tables.py`` calls this once)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("user", sa.String(32), nullable=False),
        sa.Column("private_key", sa.Text, nullable=True),  # sealed (``sealed_key_aad``)
        sa.Column("host_key", sa.Text, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


SERVER_COLUMNS = "id team_id name host port user private_key host_key state revision changed_at"
"""The columns a service's revision creating the directory table names (``berth_common.db.revision.table``)."""


@dataclass(frozen=True)
class ServerRecord:
    """One server as the directory has it; ``private_key`` stays sealed."""

    id: str
    team_id: str
    name: str
    host: str
    port: int
    user: str
    private_key: str | None
    host_key: str | None
    state: str
    revision: int

    def __repr__(self) -> str:
        return f"ServerRecord({self.id!r}, {self.name!r}, {self.user}@{self.host}:{self.port}, {self.state})"

    @property
    def usable(self) -> bool:
        """Whether a connection may be made: validated at least once, host key pinned, not removed."""
        return self.state in USABLE and self.host_key is not None and self.private_key is not None


def _record(row: Any) -> ServerRecord:
    return ServerRecord(
        row.id, row.team_id, row.name, row.host, row.port, row.user, row.private_key, row.host_key, row.state,
        row.revision,
    )  # fmt: skip


async def record_change(session: AsyncSession, table: sa.Table, msg: ServerChanged) -> bool:
    """Apply ``msg`` unless the directory has the same or a later revision; True when the row changed."""
    values = {
        "id": msg.server_id,
        "team_id": msg.team_id,
        "name": msg.name,
        "host": msg.host,
        "port": msg.port,
        "user": msg.user,
        "private_key": None if msg.state == "removed" else msg.private_key,
        "host_key": msg.host_key,
        "state": msg.state,
        "revision": msg.revision,
        "changed_at": sa.func.now(),
    }
    stmt = insert(table).values(**values)
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={k: stmt.excluded[k] for k in values if k != "id"},
        where=table.c.revision < stmt.excluded.revision,
    ).returning(table.c.id)
    return (await session.execute(upsert)).first() is not None


async def server_of(session: AsyncSession, table: sa.Table, server_id: str) -> ServerRecord | None:
    """The server (removed ones included, as ``removed``), or None when the directory never heard of it."""
    row = (await session.execute(sa.select(table).where(table.c.id == server_id))).first()
    return None if row is None else _record(row)


async def servers_in(session: AsyncSession, table: sa.Table, *, states: tuple[str, ...] = USABLE) -> list[ServerRecord]:
    """Every server in one of ``states``, by name."""
    rows = await session.execute(sa.select(table).where(table.c.state.in_(states)).order_by(table.c.name))
    return [_record(r) for r in rows]


def target_of(record: ServerRecord) -> SshTarget:
    """Where and as whom to connect to ``record`` (its private key opened here); ServerNotUsable when nothing
    may connect to it."""
    from berth_common.catalogue import sealed_key_aad  # here: migrations import this module for its columns
    from berth_common.ssh import SshTarget

    if not record.usable:
        why = "has been removed" if record.state == "removed" else "has no pinned host key yet (validate it first)"
        if record.state not in USABLE and record.state != "removed":
            why = f"is {record.state}"
        raise ServerNotUsable(f"server {record.name} ({record.id}) {why}")
    assert record.private_key is not None
    key = sealing.unseal(record.private_key, sealed_key_aad(record.id))
    return SshTarget(record.host, record.port, record.user, key, record.host_key)
