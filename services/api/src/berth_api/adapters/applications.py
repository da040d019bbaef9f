"""Database access for applications, their variables (secret values sealed) and their host names."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.readpool import ReadPool
from berth_api.adapters.rows import all_rows, first_row
from berth_api.adapters.tables import applications, deployments, environments, hosts, variables
from berth_api.adapters.tls_tables import certificate_states
from berth_api.domain.applications import VariableKind


@dataclass(frozen=True)
class StoredVariable:
    """A variables row: plain ``value``, or ``sealed`` bytes for a secret."""

    kind: VariableKind
    name: str
    secret: bool
    value: str | None
    sealed: bytes | None

    def __repr__(self) -> str:
        return f"StoredVariable({self.kind}, {self.name!r}, secret={self.secret})"


@dataclass(frozen=True)
class HostRow:
    host: str
    service: str
    generated: bool
    port: int | None = None  # a generated host of another routed port of the service (not stored: derived)


def _app_columns() -> list[Any]:
    return [*applications.c, environments.c.name.label("environment")]


def _joined() -> Any:
    return applications.join(environments, environments.c.id == applications.c.environment_id)


async def insert_application(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(sa.insert(applications).values(**values))


async def get_application(
    session: AsyncSession, team_id: str, application_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    q = (
        sa.select(*_app_columns())
        .select_from(_joined())
        .where(applications.c.id == application_id, applications.c.team_id == team_id)
    )
    if lock:
        q = q.with_for_update(of=applications)
    return await first_row(session, q)


async def list_applications(
    session: AsyncSession,
    team_id: str,
    *,
    project_id: str | None = None,
    environment_id: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    q = sa.select(*_app_columns()).select_from(_joined()).where(applications.c.team_id == team_id)
    if project_id is not None:
        q = q.where(applications.c.project_id == project_id)
    if environment_id is not None:
        q = q.where(applications.c.environment_id == environment_id)
    q = q.order_by(applications.c.name, environments.c.name, applications.c.id).limit(limit).offset(offset)
    return await all_rows(session, q)


# A page of the team's list in one statement on the read pool: the applications (ordered as
# ``list_applications``), their variables (never a secret's value: not even its seal is read) and host
# names aggregated per application, and how many match in all.
PAGE_QUERY = """
SELECT a.id, a.name, a.project_id, a.environment_id, e.name AS environment, a.config, a.created_at,
       a.updated_at, a.state, a.removal_error, a.removal_phase, count(*) OVER () AS total,
       (SELECT coalesce(json_agg(json_build_array(v.kind, v.name, v.secret,
                                                  CASE WHEN v.secret THEN NULL ELSE v.value END)
                                 ORDER BY v.kind, v.position), '[]')
          FROM variables v WHERE v.application_id = a.id) AS variables,
       (SELECT coalesce(json_agg(json_build_array(h.host, h.service, h.generated)
                                 ORDER BY h.service, h.generated DESC, h.host), '[]')
          FROM hosts h WHERE h.application_id = a.id) AS hosts,
       (SELECT json_build_object('id', d.id, 'number', d.number, 'kind', d.kind, 'state', d.state,
                                 'created_at', d.created_at, 'finished_at', d.finished_at)
          FROM deployments d WHERE d.application_id = a.id ORDER BY d.number DESC LIMIT 1) AS last_deployment
FROM applications a JOIN environments e ON e.id = a.environment_id
WHERE a.team_id = $1 AND ($2::varchar IS NULL OR a.project_id = $2)
ORDER BY a.name, e.name, a.id
LIMIT $3 OFFSET $4
"""
COUNT_QUERY = "SELECT count(*) FROM applications WHERE team_id = $1 AND ($2::varchar IS NULL OR project_id = $2)"
PAGE_KEYS = (
    "id",
    "name",
    "project_id",
    "environment_id",
    "environment",
    "created_at",
    "state",
    "removal_error",
    "removal_phase",
)
PageRow = tuple[dict[str, Any], list[StoredVariable], list[HostRow], dict[str, Any] | None]


@dataclass(frozen=True)
class PageEntry:
    """One application of a page as read: its id, a digest of every column it shows (equal digests, equal
    rows, so a list item made from one row stands for the other) and the row, decoded on demand."""

    id: str
    digest: bytes
    raw: Any  # the statement's record

    def decoded(self) -> PageRow:
        """The row with its variables (secret values None), hosts and newest deployment."""
        r = self.raw
        row = {k: r[k] for k in PAGE_KEYS}
        row["updated_at"], row["config"] = r["updated_at"], json.loads(r["config"])
        stored = [StoredVariable(k, n, secret, value, None) for k, n, secret, value in json.loads(r["variables"])]
        hosts = [HostRow(host, service, generated) for host, service, generated in json.loads(r["hosts"])]
        return row, stored, hosts, json.loads(r["last_deployment"]) if r["last_deployment"] else None


def _digest(r: Any) -> bytes:
    """A digest of a page row's columns but the page's ``total`` (which says nothing of the row itself)."""
    shown = tuple(v for k, v in r.items() if k != "total")
    return hashlib.blake2b(repr(shown).encode(), digest_size=16).digest()


async def page_of(
    pool: ReadPool, team_id: str, project_id: str | None, limit: int, offset: int
) -> tuple[list[PageEntry], int]:
    """A page of the team's applications, each with a digest of its row, and the total."""
    rows = await pool.fetch(PAGE_QUERY, team_id, project_id, limit, offset)
    if not rows:
        total = 0 if offset == 0 else int(await pool.fetchval(COUNT_QUERY, team_id, project_id))
        return [], total
    return [PageEntry(r["id"], _digest(r), r) for r in rows], int(rows[0]["total"])


async def update_application(session: AsyncSession, application_id: str, config: dict[str, Any]) -> None:
    await session.execute(
        sa.update(applications)
        .where(applications.c.id == application_id)
        .values(config=config, updated_at=sa.func.now())
    )


async def delete_application(session: AsyncSession, application_id: str) -> None:
    """The application's row (its hosts, variables and deployments go with it) and the certificate state
    of its hosts, which names it without a foreign key (the events may arrive before or after it)."""
    await session.execute(sa.delete(certificate_states).where(certificate_states.c.application_id == application_id))
    await session.execute(sa.delete(applications).where(applications.c.id == application_id))


async def set_state(session: AsyncSession, application_id: str, state: str, removal_error: str | None) -> None:
    """``active`` | ``removing`` (in the phase ``cancelling``); an UPDATE of the row, so the team's revision is
    bumped (api_0005)."""
    phase = "cancelling" if state == "removing" else None
    await session.execute(
        sa.update(applications)
        .where(applications.c.id == application_id)
        .values(state=state, removal_error=removal_error, removal_phase=phase)
    )


async def set_removal_phase(session: AsyncSession, application_id: str, phase: str, version: int) -> bool:
    """Move a ``removing`` application to ``phase`` unless a later step (``version``) was applied already."""
    result = await session.execute(
        sa.update(applications)
        .where(
            applications.c.id == application_id,
            applications.c.state == "removing",
            sa.or_(applications.c.removal_version.is_(None), applications.c.removal_version < version),
        )
        .values(removal_phase=phase, removal_version=version)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def removing_among(session: AsyncSession, application_ids: list[str]) -> set[str]:
    """Which of the applications are being removed."""
    if not application_ids:
        return set()
    q = sa.select(applications.c.id).where(applications.c.id.in_(application_ids), applications.c.state == "removing")
    return {r.id for r in (await session.execute(q)).all()}


async def has_deployments(session: AsyncSession, application_id: str) -> bool:
    """Whether the application was ever deployed (whatever became of it: the scheduler may hold its images)."""
    q = sa.select(sa.exists().where(deployments.c.application_id == application_id))
    return bool((await session.execute(q)).scalar_one())


# --- variables -------------------------------------------------------------------------------------


async def variables_of(session: AsyncSession, application_ids: list[str]) -> dict[str, list[StoredVariable]]:
    out: dict[str, list[StoredVariable]] = {a: [] for a in application_ids}
    if not application_ids:
        return out
    v = variables.c
    q = sa.select(variables).where(v.application_id.in_(application_ids)).order_by(v.application_id, v.kind, v.position)
    for r in (await session.execute(q)).all():
        out[r.application_id].append(StoredVariable(r.kind, r.name, r.secret, r.value, r.sealed))
    return out


async def replace_variables(
    session: AsyncSession, application_id: str, kind: VariableKind, rows: list[StoredVariable]
) -> None:
    await session.execute(
        sa.delete(variables).where(variables.c.application_id == application_id, variables.c.kind == kind)
    )
    if rows:
        await session.execute(
            sa.insert(variables), variable_rows({"application_id": application_id, "kind": kind}, rows)
        )


def variable_rows(owner: dict[str, Any], rows: list[StoredVariable]) -> list[dict[str, Any]]:
    """``rows`` as rows of a variables table, in order, with the owner's columns (which win over the rows'
    own ``kind``): a secret keeps only its sealed text, a plain value only its value."""
    return [
        {
            "kind": r.kind,
            "name": r.name,
            "position": i,
            "secret": r.secret,
            "value": None if r.secret else r.value,
            "sealed": r.sealed if r.secret else None,
            **owner,
        }
        for i, r in enumerate(rows)
    ]


# --- hosts -----------------------------------------------------------------------------------------


async def hosts_of(session: AsyncSession, application_ids: list[str]) -> dict[str, list[HostRow]]:
    out: dict[str, list[HostRow]] = {a: [] for a in application_ids}
    if not application_ids:
        return out
    q = (
        sa.select(hosts)
        .where(hosts.c.application_id.in_(application_ids))
        .order_by(hosts.c.application_id, hosts.c.service, sa.desc(hosts.c.generated), hosts.c.host)
    )
    for r in (await session.execute(q)).all():
        out[r.application_id].append(HostRow(r.host, r.service, r.generated))
    return out


async def hosts_taken(session: AsyncSession, names: list[str], application_id: str) -> set[str]:
    """Which of ``names`` another application routes already."""
    if not names:
        return set()
    q = sa.select(hosts.c.host).where(hosts.c.host.in_(names), hosts.c.application_id != application_id)
    return {r.host for r in (await session.execute(q)).all()}


async def hosts_overlapping(session: AsyncSession, names: list[str], application_id: str) -> dict[str, str]:
    """Which of ``names`` overlap a host that an application of another team routes: a wildcard
    ``*.example.com`` and a name one label under it (``shop.example.com``), either way round. (Such a pair
    would let one team's wildcard answer, with its own certificate, for another team's host.)"""
    team = sa.select(applications.c.team_id).where(applications.c.id == application_id).scalar_subquery()
    others = (
        sa.select(hosts.c.host)
        .select_from(hosts.join(applications, applications.c.id == hosts.c.application_id))
        .where(applications.c.team_id != team, hosts.c.application_id != application_id)
    )
    found: dict[str, str] = {}
    parents = {n: "*." + n.split(".", 1)[1] for n in names if not n.startswith("*.") and "." in n}
    if parents:
        owned = {r.host for r in (await session.execute(others.where(hosts.c.host.in_(set(parents.values()))))).all()}
        found.update({n: p for n, p in parents.items() if p in owned})
    for name in (n for n in names if n.startswith("*.")):
        base = name[2:]
        pattern = "%." + base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        for r in (await session.execute(others.where(hosts.c.host.like(pattern, escape="\\")))).all():
            label = r.host[: -len(base) - 1]
            if label and "." not in label and not label.startswith("*"):
                found[name] = r.host
                break
    return found


async def namespaces_held(session: AsyncSession, tops: list[str], application_id: str) -> dict[str, str]:
    """For each of ``tops`` (names one label under the base domain: parts of it, ``hosts.namespace_of``) a
    host another application holds in that part: the name itself, or a custom host under it (a generated
    host under it is a preview's, from its host pattern, and claims no part). Each part is locked for the
    transaction first (in one order), so two applications claiming names in one part at once are told
    apart."""
    if not tops:
        return {}
    for top in sorted(set(tops)):
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"host-part:{top}"})
    under = [hosts.c.host.like("%." + _like_escaped(t), escape="\\") for t in tops]
    q = sa.select(hosts.c.host).where(
        hosts.c.application_id != application_id,
        sa.or_(hosts.c.host.in_(tops), sa.and_(sa.not_(hosts.c.generated), sa.or_(*under))),
    )
    found: dict[str, str] = {}
    for r in (await session.execute(q.order_by(hosts.c.host))).all():
        for top in tops:
            if r.host == top or r.host.endswith("." + top):
                found.setdefault(top, r.host)
    return found


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def replace_hosts(session: AsyncSession, application_id: str, rows: list[HostRow]) -> None:
    await session.execute(sa.delete(hosts).where(hosts.c.application_id == application_id))
    if rows:
        await session.execute(
            sa.insert(hosts),
            [
                {"host": r.host, "application_id": application_id, "service": r.service, "generated": r.generated}
                for r in rows
            ],
        )
