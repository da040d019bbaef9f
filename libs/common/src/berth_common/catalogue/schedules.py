"""Schedules: commands the scheduler publishes on a cron expression in a time zone, on behalf of the api.

The api keeps nothing time-based itself: it sends ``cmd.schedule.set`` (a cron expression of five fields,
an IANA time zone, a grace, and the command to publish when due: its type, from ``SCHEDULABLE``, and its
data as the api built it) and ``cmd.schedule.remove``. The scheduler's leading instance publishes the
command at each due time through its outbox, in the transaction that moves the schedule's next due time
forward, with the id ``schedule-<schedule id>-<due time, ISO 8601 basic, UTC>`` (``run_id``): a restart
never publishes a due time twice. The command's data is not parsed beyond its type; the field
``SCHEDULABLE`` names for the type is set to that id, so each run is a new one (a new backup) and a
repeated publish the same one. Every run is reported by ``evt.schedule.fired``. A due time that passed more
than ``grace_s`` ago without a run (no scheduler was running) is reported once by ``evt.schedule.missed``,
then the command runs once at once: one catch-up run, not one per missed due time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, field_validator

from berth_common.catalogue.base import Command, Event, Id, register

# The command types a schedule may publish, each with the field of its data that is set to the run's id.
# The one place this list lives: add a type here to schedule it.
SCHEDULABLE: dict[str, str] = {
    "cmd.backup.start": "backup_id",
    "cmd.backup.drill": "drill_id",
    "cmd.job.fire": "firing_id",
}

CRON_FIELDS = 5
MAX_CRON = 120
MAX_COMMAND_BYTES = 65536
MAX_REASON = 1000
DEFAULT_GRACE_S = 300
SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,37}$"  # short enough for run ids of at most 64 characters
_CHECK_FROM = datetime(2000, 1, 1, tzinfo=UTC)


def cron_expression(value: str) -> str:
    """A cron expression of exactly five fields (minute hour day-of-month month day-of-week) that croniter
    accepts and that is due at least once (``0 0 31 2 *`` never is); raises ValueError saying what is wrong."""
    fields = value.split()
    if len(fields) != CRON_FIELDS:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), not {len(fields)}"
        )
    expr = " ".join(fields)
    from croniter import CroniterBadDateError, croniter  # imported when needed: most processes never are

    try:
        croniter(expr, _CHECK_FROM).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"invalid cron expression {expr!r}: it is never due") from None
    except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors (a bad field, a bad range)
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
    return expr


def time_zone(value: str) -> str:
    """An IANA time zone name (``Europe/Berlin``, ``UTC``) that this machine's zone database knows."""
    if not value or len(value) > 64 or value.startswith(("/", ".")) or ".." in value:
        raise ValueError(f"unknown time zone {value[:64]!r}: give an IANA name such as Europe/Berlin or UTC")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: give an IANA name such as Europe/Berlin or UTC") from None
    return value


def schedulable(value: str) -> str:
    if value not in SCHEDULABLE:
        raise ValueError(f"a schedule cannot publish {value[:128]!r}; it publishes {', '.join(sorted(SCHEDULABLE))}")
    return value


CronExpression = Annotated[str, Field(min_length=1, max_length=MAX_CRON), AfterValidator(cron_expression)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(time_zone)]
SchedulableType = Annotated[str, Field(max_length=128), AfterValidator(schedulable)]
ScheduleId = Annotated[str, Field(pattern=SCHEDULE_ID_PATTERN)]


def run_id(schedule_id: str, due: datetime) -> str:
    """The id of the command a schedule publishes for the due time ``due`` (also set in its data, see
    ``SCHEDULABLE``): ``schedule-<id>-<due, UTC, ISO 8601 basic>``, e.g. ``schedule-s1-20261205T023000Z``."""
    return f"schedule-{schedule_id}-{due.astimezone(UTC):%Y%m%dT%H%M%SZ}"


class ScheduleCommand(Command):
    """Fields every ``cmd.schedule.*`` command has (not a message by itself): ``revision`` grows with every
    change of the schedule, and the scheduler keeps the highest it saw."""

    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    schedule_id: ScheduleId
    team_id: Id
    revision: int = Field(ge=0)


@register
class SetSchedule(ScheduleCommand):
    """Publish ``command_type`` with ``command`` as its data at every due time of ``cron`` in ``timezone``
    (creates the schedule or replaces it; a changed expression or zone counts from now). ``grace_s``: how
    late a run may start and still be on time; later, ``evt.schedule.missed`` reports it and it runs once.
    ``target_id`` names what the command acts on (a database), echoed in the schedule's events.
    ``revision`` grows with every change of the schedule; one not above what the scheduler has is a no-op."""

    TYPE = "cmd.schedule.set"
    cron: CronExpression
    timezone: TimeZone
    grace_s: int = Field(default=DEFAULT_GRACE_S, ge=30, le=86400)
    command_type: SchedulableType
    command: dict[str, Any]
    target_id: Id | None = None

    @field_validator("command")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > MAX_COMMAND_BYTES:
            raise ValueError(f"the command's data is larger than {MAX_COMMAND_BYTES} bytes")
        return value


@register
class RemoveSchedule(ScheduleCommand):
    """Stop the schedule: nothing is published for it any more (a run already published stays). ``revision``
    as for ``cmd.schedule.set``: a removal older than the schedule's last change is a no-op."""

    TYPE = "cmd.schedule.remove"


class ScheduleEvent(Event):
    """Fields every ``evt.schedule.*`` event has (not a message by itself)."""

    PRODUCERS = ("scheduler",)
    schedule_id: str
    team_id: str
    command_type: str
    target_id: str | None = None
    due_at: datetime


@register
class ScheduleFired(ScheduleEvent):
    """The schedule's command for the due time ``due_at`` was published with the id ``command_id``,
    ``late_s`` seconds after it; ``catch_up``: the run that stands in for due times missed while no
    scheduler was running (``evt.schedule.missed`` came first)."""

    TYPE = "evt.schedule.fired"
    CONSUMERS = ("operator",)
    command_id: str
    late_s: float = Field(ge=0)
    catch_up: bool = False


@register
class ScheduleMissed(ScheduleEvent):
    """The schedule did not run at ``due_at``: it was ``late_s`` seconds late, more than its grace, because of
    ``reason``. Reported once; the command then runs once at once (``evt.schedule.fired`` with
    ``catch_up``), not once per missed due time."""

    TYPE = "evt.schedule.missed"
    CONSUMERS = ("notifier",)
    late_s: float = Field(ge=0)
    grace_s: int = Field(ge=0)
    reason: str = Field(max_length=MAX_REASON)
