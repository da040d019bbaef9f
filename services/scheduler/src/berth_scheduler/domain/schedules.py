"""When a schedule is due, and what its leading scheduler does about a due time (pure).

Due times are the cron expression's times in the schedule's IANA time zone, computed by croniter from an
aware local time (``zoneinfo``) and kept as UTC instants. Across daylight saving changes this is croniter's
behaviour with zoneinfo: a time that does not exist (spring forward: 02:30 in Europe/Berlin on the last
Sunday of March) is due at the first time after the gap (03:00 summer time), once, however many of the
expression's times fell in the gap; a time that exists twice (fall back: 02:30 on the last Sunday of
October) is due twice, once in summer time and once in winter time, an hour apart.

A due time is on time when its run starts within the schedule's grace; later (no scheduler was running),
it is missed: reported once, then the command runs once at once for it (the catch-up run, which stands in
for every due time missed meanwhile), and the next due time is the first one after now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from berth_common.catalogue.schedules import cron_expression, run_id, time_zone

NOT_RUNNING = "the scheduler was not running"


@dataclass(frozen=True)
class Timing:
    """A schedule's cron expression and IANA time zone, checked (ValueError saying what is wrong)."""

    cron: str
    timezone: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "cron", cron_expression(self.cron))
        time_zone(self.timezone)

    def next_after(self, instant: datetime) -> datetime:
        """The first due time strictly after ``instant`` (aware), in UTC."""
        if instant.tzinfo is None:
            raise ValueError("instant must be timezone-aware")
        from croniter import croniter  # with the first schedule: most schedulers have none

        local = instant.astimezone(ZoneInfo(self.timezone))
        due: datetime = croniter(self.cron, local).get_next(datetime)
        return due.astimezone(UTC)


def missed(due: datetime, now: datetime, grace_s: float, last_due: datetime | None = None) -> bool:
    """Whether ``due`` was missed: it has not run (``last_due``, the due time of the last run, is before it)
    and ``now`` is more than ``grace_s`` seconds after it."""
    if last_due is not None and last_due >= due:
        return False
    return (now - due).total_seconds() > grace_s


@dataclass(frozen=True)
class Run:
    """What to do for a schedule whose next due time ``due`` has come: publish the command with
    ``command_id`` (``catch_up``: after reporting ``due`` missed, ``late_s`` late), then wait for ``next_due``."""

    due: datetime
    command_id: str
    late_s: float
    catch_up: bool
    next_due: datetime


def run_for(schedule_id: str, timing: Timing, due: datetime, now: datetime, grace_s: float) -> Run | None:
    """The run of the due time ``due`` at ``now`` (None: not due yet). On time or missed, it is one run,
    and the next due time is the first after both ``due`` and ``now`` (the due times in between were
    missed together; one catch-up run stands in for them)."""
    if due > now:
        return None
    late_s = (now - due).total_seconds()
    return Run(
        due=due,
        command_id=run_id(schedule_id, due),
        late_s=late_s,
        catch_up=missed(due, now, grace_s),
        next_due=timing.next_after(max(due, now)),
    )
