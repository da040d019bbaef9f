"""Schedules: the scheduler publishes a command at every due time of a cron expression in a time zone.

It carries out ``cmd.schedule.set`` (create or replace a schedule; a changed expression or zone counts from
now) and ``cmd.schedule.remove`` (a tombstone keeps the revision, so an older change delivered late is a
no-op), each idempotent: the message id is recorded in the transaction that changes the row.

The leading scheduler (``leading``: the instance that holds the rollouts' advisory lock) looks every
``interval_s`` for schedules whose next due time has come on its ``clock``. For each, in one transaction
that locks the row: the command is written to the outbox with the run's id
(``schedule-<id>-<due time>``, also set in the data field ``SCHEDULABLE`` names) together with
``evt.schedule.fired``, and the next due time moves forward. So a crash before the commit publishes
nothing and the run happens after the restart; a crash after it leaves the outbox row, which the relay
publishes with the same id (JetStream drops a second copy): a due time never runs twice.

After a downtime longer than a schedule's grace, its first due time not run is reported once by
``evt.schedule.missed`` (how late, "the scheduler was not running"), then the command runs once at once for
it (``evt.schedule.fired`` with ``catch_up``): one run, not one per due time missed; the next due time is
the first after now. A run late by less than the grace is on time and not reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from berth_common.bus import PermanentError
from berth_common.catalogue import (
    REGISTRY,
    SCHEDULABLE,
    BackupMissed,
    RemoveSchedule,
    ScheduleFired,
    ScheduleMissed,
    SetSchedule,
)
from berth_common.db import Transactions, Unit
from berth_common.logging import get_logger
from berth_common.tasks import cancel_and_wait
from berth_scheduler.adapters import schedules as repo
from berth_scheduler.domain.schedules import NOT_RUNNING, Timing, run_for

log = get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Schedules:
    transactions: Transactions
    leading: Callable[[], bool]
    clock: Callable[[], datetime] = utc_now
    interval_s: float = 1.0
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    # --- commands ----------------------------------------------------------------------------------

    async def set(self, msg: SetSchedule, unit: Unit) -> None:
        row = await self._current(unit, msg.schedule_id, msg.team_id, msg.revision)
        if row is False:
            return
        timing = Timing(msg.cron, msg.timezone)
        values: dict[str, Any] = {
            "id": msg.schedule_id,
            "team_id": msg.team_id,
            "revision": msg.revision,
            "cron": timing.cron,
            "timezone": timing.timezone,
            "grace_s": msg.grace_s,
            "command_type": msg.command_type,
            "command": msg.command,
            "target_id": msg.target_id,
            "removed": False,
        }
        if row is None or row.removed or (row.cron, row.timezone) != (timing.cron, timing.timezone):
            values["next_due"] = timing.next_after(self.clock())
        await repo.put(unit.session, values)
        log.info("schedule set", schedule_id=msg.schedule_id, cron=timing.cron, timezone=timing.timezone)

    async def remove(self, msg: RemoveSchedule, unit: Unit) -> None:
        row = await self._current(unit, msg.schedule_id, msg.team_id, msg.revision)
        if row is False:
            return
        values: dict[str, Any] = {"id": msg.schedule_id, "revision": msg.revision, "removed": True, "next_due": None}
        if row is None:  # a tombstone: a set older than this removal, delivered later, stays a no-op
            values |= {"team_id": msg.team_id, "cron": "", "timezone": "", "grace_s": 0, "command_type": ""}
            values["command"] = {}
        await repo.put(unit.session, values, exists=row is not None)
        log.info("schedule removed", schedule_id=msg.schedule_id)

    async def _current(self, unit: Unit, schedule_id: str, team_id: str, revision: int) -> Any:
        """The schedule's row, locked (None: none yet); False when the change is not newer than it."""
        row = await repo.locked(unit.session, schedule_id)
        if row is None:
            return None
        if row.team_id != team_id:
            raise PermanentError(f"schedule {schedule_id} belongs to another team")
        if row.revision >= revision:
            log.info("schedule change not newer than the schedule; ignored", schedule_id=schedule_id)
            return False
        return row

    # --- the loop of the leading scheduler ---------------------------------------------------------

    async def tick(self) -> int:
        """Run every schedule due now (each in its own transaction); returns how many ran."""
        now = self.clock()
        async with self.transactions.sessionmaker() as session:
            due = await repo.due(session, now)
        ran = 0
        for schedule_id in due:

            async def body(unit: Unit, schedule_id: str = schedule_id) -> bool:
                return await self._run(unit, schedule_id, now)

            ran += bool(await self.transactions.run(body))
        return ran

    async def _run(self, unit: Unit, schedule_id: str, now: datetime) -> bool:
        row = await repo.locked(unit.session, schedule_id, skip_locked=True)
        if row is None or row.removed or row.next_due is None or row.next_due > now:
            return False  # another instance ran it, or it changed meanwhile
        timing = Timing(row.cron, row.timezone)
        run = run_for(row.id, timing, row.next_due, now, row.grace_s)
        assert run is not None
        about = {
            "schedule_id": row.id,
            "team_id": row.team_id,
            "command_type": row.command_type,
            "target_id": row.target_id,
            "due_at": run.due,
        }
        field_ = SCHEDULABLE.get(row.command_type)
        if run.catch_up or field_ is None:
            reason = NOT_RUNNING if field_ is not None else f"{row.command_type} may not be scheduled any more"
            missed = ScheduleMissed(**about, late_s=run.late_s, grace_s=row.grace_s, reason=reason)
            await unit.emit(missed, id=f"{run.command_id}-missed")
            if row.command_type == "cmd.backup.start":  # the backup's own family says it too
                await unit.emit(
                    backup_missed(row, run.command_id, run.due, reason), id=f"{run.command_id}-backup-missed"
                )
            log.warning("schedule missed", schedule_id=row.id, due_at=run.due.isoformat(), late_s=run.late_s)
        if field_ is not None:
            model = REGISTRY.get(row.command_type)
            version = model.SCHEMA_VERSION if model is not None else 1
            data = {**row.command, field_: run.command_id}
            await unit.emit_data(row.command_type, data, id=run.command_id, schema_version=version)
            fired = ScheduleFired(**about, command_id=run.command_id, late_s=run.late_s, catch_up=run.catch_up)
            await unit.emit(fired, id=f"{run.command_id}-fired")
            log.info("schedule fired", schedule_id=row.id, command_id=run.command_id, catch_up=run.catch_up)
        await repo.ran(unit.session, row.id, due=run.due, command_id=run.command_id, at=now, next_due=run.next_due)
        return True

    async def _loop(self) -> None:
        while True:
            if self.leading():
                try:
                    await self.tick()
                except Exception as exc:  # the database away, a row that no longer parses: next pass
                    log.warning("schedules not run this time", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="schedules")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)


def backup_missed(row: Any, backup_id: str, due: datetime, reason: str) -> BackupMissed:
    """``evt.backup.missed`` for a backup schedule's run: the backup it stands for is the run's command id,
    of the schedule's database (its target, else the one its command names)."""
    database_id = row.target_id or str((row.command or {}).get("database_id") or "") or "unknown"
    return BackupMissed(
        backup_id=backup_id,
        team_id=row.team_id,
        database_id=database_id,
        schedule_id=row.id,
        due_at=due.isoformat(),
        reason=reason,
    )
