"""Threshold rules, the hysteresis state of each (rule, target), and the alert history."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.catalogue import AlertRaised, AlertRuleSpec, AlertRuleView, AlertView
from berth_common.records import record_of
from berth_metrics.adapters.tables import alert_states, alerts, rules
from berth_metrics.domain.rules import AlertState


@dataclass(frozen=True)
class StoredRule:
    id: str
    team_id: str
    spec: AlertRuleSpec


def _view(row: Any) -> AlertRuleView:
    return AlertRuleView(
        id=row.id, team_id=row.team_id, created_at=row.created_at, updated_at=row.updated_at, **row.spec
    )


async def create_rule(session: AsyncSession, team_id: str, spec: AlertRuleSpec) -> AlertRuleView:
    stmt = (
        insert(rules)
        .values(id=uuid.uuid4().hex, team_id=team_id, spec=spec.model_dump(mode="json"))
        .returning(*rules.c)
    )
    return _view((await session.execute(stmt)).one())


async def update_rule(session: AsyncSession, team_id: str, rule_id: str, spec: AlertRuleSpec) -> AlertRuleView | None:
    stmt = (
        sa.update(rules)
        .where(rules.c.id == rule_id, rules.c.team_id == team_id)
        .values(spec=spec.model_dump(mode="json"), updated_at=sa.func.now())
        .returning(*rules.c)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else _view(row)


async def delete_rule(session: AsyncSession, team_id: str, rule_id: str) -> bool:
    gone = await session.execute(
        sa.delete(rules).where(rules.c.id == rule_id, rules.c.team_id == team_id).returning(rules.c.id)
    )
    if gone.first() is None:
        return False
    await session.execute(
        sa.update(alerts)
        .where(alerts.c.rule_id == rule_id, alerts.c.resolved_at.is_(None))
        .values(resolved_at=sa.func.now())
    )
    return True


async def list_rules(session: AsyncSession, team_id: str) -> list[AlertRuleView]:
    rows = await session.execute(sa.select(rules).where(rules.c.team_id == team_id).order_by(rules.c.created_at))
    return [_view(r) for r in rows]


async def all_rules(session: AsyncSession) -> list[StoredRule]:
    rows = await session.execute(sa.select(rules.c.id, rules.c.team_id, rules.c.spec))
    return [StoredRule(r.id, r.team_id, AlertRuleSpec.model_validate(r.spec)) for r in rows]


async def load_states(session: AsyncSession) -> dict[tuple[str, str], tuple[AlertState, str | None]]:
    rows = await session.execute(sa.select(alert_states))
    return {
        (r.rule_id, r.instance): (
            AlertState(r.status, r.since, r.raised_at, r.below_since, r.value, r.peak),
            r.alert_id,
        )
        for r in rows
    }


async def save_state(
    session: AsyncSession, rule_id: str, instance: str, state: AlertState, alert_id: str | None
) -> None:
    """Keep a state that is not plainly ``ok``; forget one that is."""
    if state.status == "ok":
        await session.execute(
            sa.delete(alert_states).where(alert_states.c.rule_id == rule_id, alert_states.c.instance == instance)
        )
        return
    values = {
        "status": state.status,
        "since": state.since,
        "raised_at": state.raised_at,
        "below_since": state.below_since,
        "value": state.value,
        "peak": state.peak,
        "alert_id": alert_id,
        "updated_at": datetime.now(UTC),
    }
    stmt = insert(alert_states).values(rule_id=rule_id, instance=instance, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["rule_id", "instance"], set_=values))


# The columns of the alerts table that hold the raised event's field of the same name.
RAISED_COLUMNS = ("rule_id", "team_id", "target_kind", "metric", "threshold", "value", "labels", "since", "raised_at")


async def record_raised(session: AsyncSession, alert: AlertRaised, peak: float | None) -> None:
    """The row of a raised alert: what its event says, and the peak so far (kept once per alert id)."""
    said = alert.model_dump(include={*RAISED_COLUMNS})
    row = insert(alerts).values(id=alert.alert_id, instance=alert.target_id, peak=peak, **said)
    await session.execute(row.on_conflict_do_nothing())


async def record_resolved(
    session: AsyncSession, alert_id: str, resolved_at: datetime, value: float | None, peak: float | None
) -> None:
    await session.execute(
        sa.update(alerts).where(alerts.c.id == alert_id).values(resolved_at=resolved_at, value=value, peak=peak)
    )


async def list_alerts(session: AsyncSession, team_id: str, open_only: bool, limit: int) -> list[AlertView]:
    query = sa.select(alerts).where(alerts.c.team_id == team_id)
    if open_only:
        query = query.where(alerts.c.resolved_at.is_(None))
    query = query.order_by(alerts.c.resolved_at.is_(None).desc(), alerts.c.raised_at.desc()).limit(limit)
    return [
        record_of(AlertView, r, alert_id=r.id, target_id=r.instance, status="resolved" if r.resolved_at else "firing")
        for r in await session.execute(query)
    ]
