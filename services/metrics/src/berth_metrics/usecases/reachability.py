"""Server reachability: after every collection, whether each server's engine answered goes through
``domain.reachability``; an outage and its end are stored with their event (``evt.server.unreachable``,
``evt.server.back``) in one transaction (outbox),
so each is announced once, also across a restart of the service. The local server's state is kept under its
name, an added server's under its id (its events carry both)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_common.catalogue import ServerBack, ServerUnreachable
from berth_common.db import Unit
from berth_common.db.unit import run_unit
from berth_common.logging import get_logger
from berth_common.records import record_of
from berth_metrics.adapters.tables import server_health
from berth_metrics.domain.reachability import Limits, ServerHealth, Transition, observe

log = get_logger(__name__)


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s / 3600:.1f} h"


def message_for(
    server: str, tr: Transition, interval_s: float, server_id: str | None = None
) -> ServerUnreachable | ServerBack:
    common: dict[str, Any] = {
        "server": server,
        "server_id": server_id,
        "outage_id": tr.outage_id,
        "team_ids": list(tr.team_ids),
        "down_since": tr.down_since,
        "last_seen_at": tr.last_seen_at,
        "failed_checks": tr.failed_checks,
    }
    if tr.kind == "unreachable":
        reason = (
            f"the Docker engine of {server} did not answer {tr.failed_checks} collections in a row "
            f"(one every {interval_s:g} s) since {tr.down_since:%Y-%m-%d %H:%M:%S} UTC"
        )
        return ServerUnreachable(**common, reason=reason, error=tr.error[:500])
    down_for = max((tr.at - tr.down_since).total_seconds(), 0.0)
    reason = f"the Docker engine of {server} answers again after {_duration(down_for)} unreachable"
    return ServerBack(**common, back_at=tr.at, down_for_s=down_for, reason=reason)


def _row(server: str, h: ServerHealth) -> dict[str, Any]:
    return {
        "server": server,
        "status": h.status,
        "failures": h.failures,
        "successes": h.successes,
        "failing_since": h.failing_since,
        "last_seen_at": h.last_seen_at,
        "outage_id": h.outage_id,
        "team_ids": list(h.team_ids),
        "error": h.error[:500],
        "updated_at": sa.func.now(),
    }


@dataclass
class ReachabilityWatch:
    bus: Bus
    sessionmaker: async_sessionmaker[AsyncSession]
    limits: Limits
    interval_s: float
    states: dict[str, ServerHealth] = field(default_factory=dict)

    async def load(self) -> None:
        async with self.sessionmaker() as session:
            rows = (await session.execute(sa.select(server_health))).mappings().all()
        # A streak of failures below the count does not survive a restart ("in a row" was broken by it);
        # an announced outage does: its end is still announced, and it is not announced again.
        self.states = {
            r["server"]: record_of(ServerHealth, r, team_ids=tuple(r["team_ids"] or ()))
            for r in rows
            if r["status"] == "down"
        }

    async def observe(
        self,
        server: str,
        answered: bool,
        now: datetime,
        teams: tuple[str, ...] = (),
        error: str = "",
        *,
        server_id: str | None = None,
    ) -> Transition | None:
        """One collection's outcome for ``server`` (its name; ``server_id`` for an added server); stored
        (and announced) when it changes the state."""
        key = server_id or server
        old = self.states.get(key, ServerHealth())
        new, transition = observe(key, old, answered, now, self.limits, teams, error)
        if transition is None and _same_but_time(old, new):
            self.states[key] = new  # only last_seen_at moved: nothing worth a write
            return None

        async def body(unit: Unit) -> None:
            stmt = insert(server_health).values(_row(key, new))
            update = {k: stmt.excluded[k] for k in _row(key, new) if k != "server"}
            await unit.session.execute(stmt.on_conflict_do_update(index_elements=["server"], set_=update))
            if transition is not None:
                message = message_for(server, transition, self.interval_s, server_id)
                await unit.emit(message, id=f"server-{transition.kind}-{transition.outage_id}")

        await run_unit(self.bus, self.sessionmaker, body)
        self.states[key] = new
        if transition is not None:
            log.warning(
                "server " + transition.kind, server=server, server_id=server_id, checks=transition.failed_checks
            )
        return transition

    async def forget(self, server_id: str) -> None:
        """A removed server: its state goes (an outage it was in is never announced as over)."""
        self.states.pop(server_id, None)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(sa.delete(server_health).where(server_health.c.server == server_id))


def _same_but_time(a: ServerHealth, b: ServerHealth) -> bool:
    return (a.status, a.failures, a.successes, a.failing_since, a.outage_id) == (
        b.status,
        b.failures,
        b.successes,
        b.failing_since,
        b.outage_id,
    )
