"""Due times of schedules (cron in an IANA time zone, across daylight saving changes), the checks of an
expression and a zone, missed due times and the run of a due time: exact values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from berth_common.catalogue import SCHEDULABLE, RemoveSchedule, SetSchedule, run_id
from berth_scheduler.domain.schedules import Run, Timing, missed, run_for


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def walk(timing: Timing, start: datetime, n: int) -> list[str]:
    """The next ``n`` due times after ``start``, each as local time with its offset."""
    out, t = [], start
    for _ in range(n):
        t = timing.next_after(t)
        assert t.tzinfo is UTC
        out.append(t.astimezone(timing_zone(timing)).isoformat())
    return out


def timing_zone(timing: Timing):
    from zoneinfo import ZoneInfo

    return ZoneInfo(timing.timezone)


def test_next_due_is_strictly_after_and_in_utc():
    every_minute = Timing("* * * * *", "UTC")
    assert every_minute.next_after(utc(2026, 1, 1, 12, 0, 0)) == utc(2026, 1, 1, 12, 1)
    assert every_minute.next_after(utc(2026, 1, 1, 12, 0, 30)) == utc(2026, 1, 1, 12, 1)
    berlin = Timing("0 3 * * *", "Europe/Berlin")  # 03:00 local: 02:00 UTC in winter, 01:00 in summer
    assert berlin.next_after(utc(2026, 1, 10)) == utc(2026, 1, 10, 2)
    assert berlin.next_after(utc(2026, 7, 10)) == utc(2026, 7, 10, 1)
    ny = Timing("30 9 * * 1-5", "America/New_York")  # weekdays 09:30 local
    assert ny.next_after(utc(2026, 12, 4, 15)) == utc(2026, 12, 7, 14, 30)  # Friday after 09:30 -> Monday
    with pytest.raises(ValueError, match="timezone-aware"):
        every_minute.next_after(datetime(2026, 1, 1))


def test_spring_forward_in_berlin():
    """2026-03-29 02:00 CET -> 03:00 CEST: the times in the gap are due once, at 03:00 CEST."""
    start = utc(2026, 3, 27, 12)
    assert walk(Timing("30 2 * * *", "Europe/Berlin"), start, 4) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    assert walk(Timing("*/20 2 * * *", "Europe/Berlin"), utc(2026, 3, 28, 23), 4) == [
        "2026-03-29T03:00:00+02:00",  # 02:00, 02:20 and 02:40 do not exist: one run at 03:00
        "2026-03-30T02:00:00+02:00",
        "2026-03-30T02:20:00+02:00",
        "2026-03-30T02:40:00+02:00",
    ]
    assert walk(Timing("0 * * * *", "Europe/Berlin"), utc(2026, 3, 28, 23), 4) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
        "2026-03-29T05:00:00+02:00",
    ]


def test_fall_back_in_berlin():
    """2026-10-25 03:00 CEST -> 02:00 CET: the hour 02:00-03:00 exists twice, and so do its due times."""
    assert walk(Timing("30 2 * * *", "Europe/Berlin"), utc(2026, 10, 23, 23), 4) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-26T02:30:00+01:00",
    ]
    assert walk(Timing("0 * * * *", "Europe/Berlin"), utc(2026, 10, 24, 23), 4) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T04:00:00+01:00",
    ]
    # once a day at 03:00: the changing offset, no double run (03:00 exists once)
    assert walk(Timing("0 3 * * *", "Europe/Berlin"), utc(2026, 10, 23, 12), 3) == [
        "2026-10-24T03:00:00+02:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-26T03:00:00+01:00",
    ]
    in_utc = [Timing("0 * * * *", "Europe/Berlin").next_after(utc(2026, 10, 24, 23, 30))]
    in_utc.append(Timing("0 * * * *", "Europe/Berlin").next_after(in_utc[0]))
    assert in_utc == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 1)]  # 02:00 CEST, then 02:00 CET


def test_spring_forward_in_new_york():
    """2026-03-08 02:00 EST -> 03:00 EDT."""
    assert walk(Timing("30 2 * * *", "America/New_York"), utc(2026, 3, 7, 0), 3) == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]
    assert [Timing("30 2 * * *", "America/New_York").next_after(utc(2026, 3, 7, 12))] == [utc(2026, 3, 8, 7)]


def test_fall_back_in_new_york():
    """2026-11-01 02:00 EDT -> 01:00 EST: 01:30 is due twice, an hour apart."""
    assert walk(Timing("30 1 * * *", "America/New_York"), utc(2026, 10, 31, 12), 4) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-02T01:30:00-05:00",
        "2026-11-03T01:30:00-05:00",
    ]
    first = Timing("30 1 * * *", "America/New_York").next_after(utc(2026, 10, 31, 12))
    assert first == utc(2026, 11, 1, 5, 30)
    assert Timing("30 1 * * *", "America/New_York").next_after(first) == utc(2026, 11, 1, 6, 30)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "a cron expression has 5 fields (minute hour day-of-month month day-of-week), not 4"),
        ("* * * * * *", "a cron expression has 5 fields (minute hour day-of-month month day-of-week), not 6"),
        ("@daily", "a cron expression has 5 fields (minute hour day-of-month month day-of-week), not 1"),
        ("61 * * * *", "invalid cron expression '61 * * * *': [61 * * * *] is not acceptable, out of range"),
        ("0 0 * * 8", "invalid cron expression '0 0 * * 8': [0 0 * * 8] is not acceptable, out of range"),
        ("0 0 31 2 *", "invalid cron expression '0 0 31 2 *': it is never due"),
    ],
)
def test_invalid_cron_is_refused_saying_why(cron: str, message: str):
    with pytest.raises(ValueError) as raised:
        Timing(cron, "UTC")
    assert str(raised.value) == message
    with pytest.raises(ValidationError) as invalid:
        SetSchedule(**_set(cron=cron))
    assert invalid.value.errors()[0]["loc"] == ("cron",)
    assert message in str(invalid.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/berlin ", "", "../../etc/passwd", "/etc/localtime"])
def test_invalid_zone_is_refused_saying_why(zone: str):
    with pytest.raises(ValueError) as raised:
        Timing("* * * * *", zone)
    assert str(raised.value) == f"unknown time zone {zone!r}: give an IANA name such as Europe/Berlin or UTC"
    with pytest.raises(ValidationError) as invalid:
        SetSchedule(**_set(timezone=zone))
    assert invalid.value.errors()[0]["loc"] == ("timezone",)


def test_a_cron_expression_is_kept_with_single_spaces():
    assert Timing("*/5   1  * * *", "UTC").cron == "*/5 1 * * *"
    assert SetSchedule(**_set(cron=" 0  3 * * 0 ")).cron == "0 3 * * 0"


def _set(**change: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schedule_id": "nightly",
        "team_id": "team-1",
        "revision": 1,
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "command_type": "cmd.backup.start",
        "command": {"database_id": "db-1"},
    }
    return {**base, **change}


def test_only_allowed_command_types_are_scheduled():
    assert SCHEDULABLE == {"cmd.backup.start": "backup_id", "cmd.backup.drill": "drill_id", "cmd.job.fire": "firing_id"}
    assert SetSchedule(**_set()).grace_s == 300
    for bad in ("cmd.deployment.start", "cmd.application.remove", "evt.backup.succeeded", "cmd.backup.startx"):
        with pytest.raises(ValidationError) as invalid:
            SetSchedule(**_set(command_type=bad))
        assert invalid.value.errors()[0]["loc"] == ("command_type",)
        allowed = "cmd.backup.drill, cmd.backup.start, cmd.job.fire"
        assert f"a schedule cannot publish {bad!r}; it publishes {allowed}" in str(invalid.value)
    with pytest.raises(ValidationError, match="larger than 65536 bytes"):
        SetSchedule(**_set(command={"x": "y" * 70000}))
    with pytest.raises(ValidationError):
        SetSchedule(**_set(grace_s=5))  # less than a pass of the loop could take
    with pytest.raises(ValidationError):
        SetSchedule(**_set(schedule_id="a" * 39))  # its run ids would not fit 64 characters
    with pytest.raises(ValidationError):
        RemoveSchedule(schedule_id="bad id", team_id="t", revision=1)


def test_run_ids_are_per_due_time_and_fit_an_id():
    assert run_id("nightly", utc(2026, 12, 5, 2, 30)) == "schedule-nightly-20261205T023000Z"
    berlin = datetime(2026, 10, 25, 2, 30, tzinfo=timing_zone(Timing("* * * * *", "Europe/Berlin")))
    assert run_id("s", berlin) == "schedule-s-20261025T003000Z"  # the instant, in UTC
    assert run_id("s", berlin.replace(fold=1)) == "schedule-s-20261025T013000Z"  # the second 02:30
    assert len(run_id("a" * 38, utc(2026, 1, 1))) == 64


def test_missed_after_the_grace_only_when_not_run():
    due = utc(2026, 1, 1, 3)
    assert not missed(due, due, 60)
    assert not missed(due, due + timedelta(seconds=60), 60)
    assert missed(due, due + timedelta(seconds=61), 60)
    assert not missed(due, due + timedelta(hours=5), 60, last_due=due)  # it ran
    assert missed(due, due + timedelta(hours=5), 60, last_due=due - timedelta(days=1))
    assert not missed(due, due - timedelta(seconds=1), 0)  # not due yet


def test_run_of_a_due_time():
    timing = Timing("*/10 * * * *", "UTC")
    due = utc(2026, 1, 1, 3, 0)
    assert run_for("s", timing, due, due - timedelta(seconds=1), 60) is None
    assert run_for("s", timing, due, due + timedelta(seconds=2), 60) == Run(
        due=due, command_id="schedule-s-20260101T030000Z", late_s=2.0, catch_up=False, next_due=utc(2026, 1, 1, 3, 10)
    )
    # the scheduler was down from 02:55 to 03:47: one catch-up run for 03:00, then 03:50
    assert run_for("s", timing, due, utc(2026, 1, 1, 3, 47, 10), 60) == Run(
        due=due,
        command_id="schedule-s-20260101T030000Z",
        late_s=2830.0,
        catch_up=True,
        next_due=utc(2026, 1, 1, 3, 50),
    )
    # late, but within a grace longer than the period: on time, and the due times in between are skipped
    assert run_for("s", timing, due, utc(2026, 1, 1, 3, 12), 900) == Run(
        due=due, command_id="schedule-s-20260101T030000Z", late_s=720.0, catch_up=False, next_due=utc(2026, 1, 1, 3, 20)
    )
