"""Every sealed value of the api schema, and the lock that keeps sealing and key rotation apart.

Sealed values live in ``variables``, ``environment_variables``, ``group_variables``, ``registries``,
``servers``, ``databases``, ``backup_destinations``, ``backup_keys``, ``certificates``, ``webhooks``,
``webhook_status_targets``, ``git_credentials`` and ``preview_settings`` (their ``sealed`` column; a
database's ``pending`` one too), in compose applications' files (``applications.config``), in the dashboard's sessions (``ui_sessions.sealed_token``: a rotation
leaves everyone signed in) and in deployment snapshots (``deployments.spec``, ``sealed:v1:`` texts). A
transaction that seals takes the key lock shared (``hold_for_sealing``) and then seals with the key file's current key; rotation takes it
exclusively, so no value sealed with the old key can commit after rotation re-sealed everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.data_tables import backup_destinations, backup_keys, databases
from berth_api.adapters.git_tables import git_credentials
from berth_api.adapters.preview_tables import preview_settings
from berth_api.adapters.rows import all_rows
from berth_api.adapters.secretbox import KeyRing, SecretBox, SecretUnavailableError
from berth_api.adapters.tables import (
    applications,
    deployments,
    environment_variables,
    group_variables,
    registries,
    servers,
    variables,
)
from berth_api.adapters.tls_tables import certificates
from berth_api.adapters.ui_tables import session_aad, ui_sessions
from berth_api.adapters.webhook_tables import webhook_status_targets, webhooks
from berth_api.domain.applications import ROW_AAD, file_aad, reseal_spec, row_aad, snapshot_aad, variable_aad

KEY_LOCK = "berth-api-secrets-key"
VARIABLE_TABLES = (
    ("application", variables, "application_id"),
    ("environment", environment_variables, "environment_id"),
    ("group", group_variables, "group_id"),
)


async def hold_for_sealing(session: AsyncSession, box: SecretBox) -> None:
    """Before sealing in this transaction: wait out a key rotation in progress, then use the newest key."""
    await session.execute(sa.text("SELECT pg_advisory_xact_lock_shared(hashtext(:k))"), {"k": KEY_LOCK})
    if isinstance(box, KeyRing):
        box.refresh()


async def hold_for_rotation(session: AsyncSession) -> None:
    """Exclusive: every sealing transaction has finished, and new ones wait until this one ends."""
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": KEY_LOCK})


ROW_SEALED = (
    registries,
    servers,
    databases,
    backup_destinations,
    backup_keys,
    certificates,
    webhooks,
    webhook_status_targets,
    git_credentials,
    preview_settings,
)  # one sealed value per row (``row_aad``)


@dataclass
class Resealed:
    """Per place: values re-sealed, and values (snapshots, for deployments) already sealed with the new key."""

    counts: dict[str, int] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def reseal_all(session: AsyncSession, box: SecretBox) -> Resealed:
    """Open every sealed value (with any key ``box`` has) and seal it again with ``box``'s current key.

    Raises ``SecretUnavailableError`` (naming the row, never a value) if one does not open: then nothing
    must be committed.
    """
    out = Resealed()
    for scope, table, owner in VARIABLE_TABLES:
        c = table.c
        q = (
            sa.select(c[owner], c.kind, c.name, c.sealed)
            .where(c.sealed.isnot(None))
            .order_by(c[owner], c.kind, c.name)
            .with_for_update()
        )
        done = kept = 0
        for r in (await session.execute(q)).all():
            if box.sealed_with_current(r.sealed):
                kept += 1
                continue
            aad = variable_aad(scope, r[0], r.kind, r.name)
            sealed = box.seal(_open(box, r.sealed, aad, f"{table.name} {r[0]} {r.kind} {r.name}"), aad)
            await session.execute(
                sa.update(table).where(c[owner] == r[0], c.kind == r.kind, c.name == r.name).values(sealed=sealed)
            )
            done += 1
        out.counts[table.name], out.current[table.name] = done, kept
    for table in ROW_SEALED:
        done = kept = 0
        present = table.c.sealed.isnot(None)
        q = sa.select(table.c.id, table.c.sealed).where(present).order_by(table.c.id).with_for_update()
        for row in await all_rows(session, q):
            if box.sealed_with_current(row["sealed"]):
                kept += 1
                continue
            aad = row_aad(table.name, row["id"])
            opened = _open(box, row["sealed"], aad, f"{ROW_AAD[table.name]} {row['id']}")
            sealed = box.seal(opened, aad)
            await session.execute(sa.update(table).where(table.c.id == row["id"]).values(sealed=sealed))
            done += 1
        if done or kept:  # a place is counted once it holds values
            out.counts[table.name], out.current[table.name] = done, kept
    done = 0
    pq = sa.select(databases.c.id, databases.c.pending).where(databases.c.pending.isnot(None)).with_for_update()
    for row in await all_rows(session, pq.order_by(databases.c.id)):  # a rotation's next password
        if not box.sealed_with_current(row["pending"]):
            aad = row_aad("databases", row["id"]) + ":pending"
            pending = box.seal(_open(box, row["pending"], aad, f"database {row['id']} (pending)"), aad)
            await session.execute(sa.update(databases).where(databases.c.id == row["id"]).values(pending=pending))
            done += 1
    if done:
        out.counts["databases"] = out.counts.get("databases", 0) + done
    done = kept = 0
    dq = sa.select(deployments.c.id, deployments.c.spec).order_by(deployments.c.id).with_for_update()
    for d in (await session.execute(dq)).all():
        stale: list[str] = []

        def reseal(text: str, aad: str, dep: str = d.id, stale: list[str] = stale) -> str:
            if box.sealed_with_text(text):
                return text
            stale.append(aad)
            return box.seal_text(_open_text(box, text, aad, f"deployment {dep}"), aad)

        spec = reseal_spec(d.spec, reseal, snapshot_aad(d.id))
        if stale:
            await session.execute(sa.update(deployments).where(deployments.c.id == d.id).values(spec=spec))
            done += len(stale)
        else:
            kept += 1
    out.counts["deployments"], out.current["deployments"] = done, kept
    await _reseal_files(session, box, out)
    await _reseal_sessions(session, box, out)
    return out


async def _reseal_files(session: AsyncSession, box: SecretBox, out: Resealed) -> None:
    """The files of compose applications (``config.compose.files[].sealed``) re-sealed."""
    has_files = applications.c.config["compose"]["files"].isnot(None)  # only those rows are locked
    q = sa.select(applications.c.id, applications.c.config).where(has_files).order_by(applications.c.id)
    q = q.with_for_update()
    done = kept = 0
    for row in await all_rows(session, q):
        config = row["config"] or {}
        files = (config.get("compose") or {}).get("files") or []
        fresh = []
        for f in files:
            if box.sealed_with_text(f["sealed"]):
                kept += 1
                fresh.append(f)
                continue
            aad = file_aad(row["id"], f["path"])
            opened = _open_text(box, f["sealed"], aad, f"application {row['id']} file {f['path']}")
            fresh.append({**f, "sealed": box.seal_text(opened, aad)})
            done += 1
        if fresh != files:
            changed = {**config, "compose": {**config["compose"], "files": fresh}}
            await session.execute(sa.update(applications).where(applications.c.id == row["id"]).values(config=changed))
    if done or kept:
        out.counts["application_files"], out.current["application_files"] = done, kept


async def _reseal_sessions(session: AsyncSession, box: SecretBox, out: Resealed) -> None:
    """The dashboard's sessions re-sealed; an expired one, or one whose token no key opens (its person is
    signed out already), is deleted instead of stopping the rotation."""
    c, now = ui_sessions.c, datetime.now(UTC)
    q = sa.select(c.id, c.sealed_token, c.expires_at).order_by(c.id).with_for_update()
    done = kept = 0
    dead: list[str] = []
    for row in await all_rows(session, q):
        if row["expires_at"] < now:
            dead.append(row["id"])
        elif box.sealed_with_current(row["sealed_token"]):
            kept += 1
        else:
            try:
                token = box.open(row["sealed_token"], session_aad(row["id"]))
            except SecretUnavailableError:
                dead.append(row["id"])
                continue
            sealed = box.seal(token, session_aad(row["id"]))
            await session.execute(sa.update(ui_sessions).where(c.id == row["id"]).values(sealed_token=sealed))
            done += 1
    if dead:
        await session.execute(sa.delete(ui_sessions).where(c.id.in_(dead)))
    if done or kept:
        out.counts["ui_sessions"], out.current["ui_sessions"] = done, kept


def _open(box: SecretBox, blob: bytes, aad: str, where: str) -> str:
    try:
        return box.open(blob, aad)
    except SecretUnavailableError as exc:
        raise SecretUnavailableError(f"{where}: {exc}") from None


def _open_text(box: SecretBox, text: str, aad: str, where: str) -> str:
    try:
        return box.open_text(text, aad)
    except SecretUnavailableError as exc:
        raise SecretUnavailableError(f"{where}: {exc}") from None
