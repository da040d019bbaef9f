"""The built-in "database down" alert (``domain.database_down``): after every collection each database's
container takes one hysteresis step; a raise or a resolve is stored in the alert history with its event
(``evt.alert.raised``, ``evt.alert.resolved``, rule id ``BUILTIN_DATABASE_DOWN``, metric ``down``) in one
transaction (outbox), so the team's subscribers are told once, and the api lists it with the team's alerts.

The raised alerts still open are read back at start, so one raised before a restart resolves after it; a
database that was only pending starts its wait again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_common.catalogue import BUILTIN_DATABASE_DOWN, AlertRaised, AlertResolved
from berth_common.db import Unit
from berth_common.db.unit import run_unit
from berth_common.logging import get_logger
from berth_metrics.adapters import rules_repo
from berth_metrics.adapters.tables import alerts
from berth_metrics.domain import database_down as dom
from berth_metrics.domain.readings import Snapshot, TargetValue
from berth_metrics.domain.rules import AlertState, Transition, step
from berth_metrics.usecases.alerts import alert_id

log = get_logger(__name__)


@dataclass
class Watched:
    team_id: str
    state: AlertState
    alert_id: str | None = None


@dataclass
class DatabaseDownWatch:
    bus: Bus
    sessionmaker: async_sessionmaker[AsyncSession]
    snapshot: Callable[[], Snapshot]
    server: str
    down_after_s: float = 300.0
    watched: dict[str, Watched] = field(default_factory=dict)  # database id -> its alert's state (not ok)
    restarts: dict[str, int] = field(default_factory=dict)  # container id -> restart count last collection

    async def load(self) -> None:
        """The raised alerts still open: their databases are watched as firing."""
        async with self.sessionmaker() as session:
            rows = await session.execute(
                sa.select(alerts).where(alerts.c.rule_id == BUILTIN_DATABASE_DOWN, alerts.c.resolved_at.is_(None))
            )
            for r in rows:
                state = AlertState("firing", r.since, r.raised_at, None, r.value, r.peak)
                self.watched[r.instance] = Watched(r.team_id, state, r.id)

    async def evaluate(self, now: datetime) -> list[Transition]:
        found, self.restarts = dom.readings(self.snapshot(), self.restarts)
        teams = {r.database_id: r.team_id for r in found}
        limits = dom.thresholds(self.down_after_s)
        done = []
        for target in dom.values(found, list(self.watched)):
            watched = self.watched.get(target.instance)
            team_id = watched.team_id if watched is not None else teams[target.instance]
            state = watched.state if watched is not None else AlertState()
            new, transition = step(limits, state, target.value, now)
            current = watched.alert_id if watched is not None else None
            if transition is not None and transition.kind == "raised":
                current = alert_id(BUILTIN_DATABASE_DOWN, target.instance, transition.since)
                await self._announce(team_id, target, transition, current)
            elif transition is not None and current is not None:
                await self._announce(team_id, target, transition, current)
            if transition is not None:
                done.append(transition)
            if new.status == "ok":
                self.watched.pop(target.instance, None)
            else:
                self.watched[target.instance] = Watched(team_id, new, current)
        return done

    async def _announce(self, team_id: str, target: TargetValue, tr: Transition, aid: str) -> None:
        what = f"database {target.instance}"
        down_s = (tr.at - tr.since).total_seconds()
        common: dict[str, Any] = {
            "alert_id": aid,
            "rule_id": BUILTIN_DATABASE_DOWN,
            "rule_name": dom.RULE_NAME,
            "team_id": team_id,
            "target_kind": "app",
            "target_id": target.instance,
            "target": what,
            "metric": "down",
            "threshold": self.down_after_s,
            "server": self.server,
            "labels": target.labels,
            "since": tr.since,
            "raised_at": tr.raised_at,
        }

        async def body(unit: Unit) -> None:
            if tr.kind == "raised":
                reason = (
                    f"{what} has not been running and healthy for {down_s:g}s: its container is restarting, "
                    "keeps restarting, fails its health check (the engine does not answer) or does not start"
                )
                event = AlertRaised(**common, value=down_s, for_s=self.down_after_s, reason=reason)
                await rules_repo.record_raised(unit.session, event, peak=down_s)
                await unit.emit(event, id=f"alert-raised-{aid}")
                log.info("database down", database_id=target.instance, down_s=down_s)
                return
            gone = tr.value is None
            reason = f"{what} is gone (stopped or removed)" if gone else f"{what} is running again"
            value = None if gone else 0.0
            await rules_repo.record_resolved(unit.session, aid, tr.at, value, down_s)
            resolved = AlertResolved(
                **common,
                value=value,
                peak=down_s,
                resolved_at=tr.at,
                duration_s=(tr.at - tr.raised_at).total_seconds(),
                reason=reason,
            )
            await unit.emit(resolved, id=f"alert-resolved-{aid}")
            log.info("database up again", database_id=target.instance, gone=gone)

        await run_unit(self.bus, self.sessionmaker, body)
