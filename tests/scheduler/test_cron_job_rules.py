"""The rules of a cron job's firing (pure): the concurrency policies, the run id a firing makes, the schedule
and time zone a job takes, and which finished runs are announced as the job failing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from berth_common.catalogue import FireJob, RunJob, SetSchedule, job_run_id, job_schedule_id
from berth_scheduler.domain.cron_jobs import Decision, announces_failure, decide, replaced_reason, stopped
from berth_scheduler.domain.runs import Outcome
from berth_scheduler.domain.schedules import Timing


def test_forbid_skips_while_a_previous_run_is_not_finished() -> None:
    assert decide("forbid", [], "r2") == Decision(run=True)
    skipped = decide("forbid", ["r0", "r1"], "r2")
    assert not skipped.run and skipped.stop == ()
    assert skipped.skipped == "skipped: the job's previous run r1 was still running (concurrency forbid)"


def test_replace_stops_every_previous_run_and_allow_runs_beside_them() -> None:
    assert decide("replace", ["r0", "r1"], "r2") == Decision(run=True, stop=("r0", "r1"))
    assert decide("replace", [], "r2") == Decision(run=True)
    assert decide("allow", ["r0", "r1"], "r2") == Decision(run=True)


def test_the_firing_itself_is_no_previous_run() -> None:
    """A firing delivered again while its own run runs neither skips nor stops itself."""
    assert decide("forbid", ["r2"], "r2") == Decision(run=True)
    assert decide("replace", ["r1", "r2"], "r2") == Decision(run=True, stop=("r1",))


def test_a_replaced_run_fails_saying_so_and_is_no_failure_of_the_job() -> None:
    result = stopped(Outcome("failed", 143, "exited with code 143", ("a",)), replaced_reason("r9"))
    assert result == Outcome("failed", 143, "stopped: replaced by the job's next run r9 (concurrency replace)", ("a",))
    assert stopped(Outcome("succeeded", 0, ""), replaced_reason("r9")).status == "failed"
    assert not announces_failure("j", "failed", replaced_reason("r9"))
    assert announces_failure("j", "failed", None) and announces_failure("j", "timed_out", None)
    assert not announces_failure("j", "succeeded", None) and not announces_failure("j", "skipped", None)
    assert not announces_failure(None, "failed", None)  # a one-off run is no job's


def test_a_firing_makes_one_run_id() -> None:
    firing = "schedule-job-abc-20261205T023000Z"
    assert job_run_id(firing) == job_run_id(firing) and len(job_run_id(firing)) == 32
    assert job_run_id(firing) != job_run_id("schedule-job-abc-20261205T023100Z")
    assert len(job_schedule_id("x" * 64)) <= 38


def test_a_job_fires_in_its_time_zone() -> None:
    timing = Timing("30 2 * * *", "Europe/Berlin")
    assert timing.next_after(datetime(2026, 12, 5, 0, 0, tzinfo=UTC)) == datetime(2026, 12, 5, 1, 30, tzinfo=UTC)
    summer = Timing("0 9 * * 1-5", "America/New_York")
    assert summer.next_after(datetime(2026, 7, 3, 14, 0, tzinfo=UTC)) == datetime(2026, 7, 6, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("cron", "* * *", "5 fields"),
        ("cron", "61 * * * *", "invalid cron expression"),
        ("cron", "0 0 31 2 *", "never due"),
        ("timezone", "Mars/Olympus", "unknown time zone"),
        ("timezone", "../etc/passwd", "unknown time zone"),
    ],
)
def test_a_bad_schedule_or_zone_is_refused_naming_it(field: str, value: str, says: str) -> None:
    given: dict[str, object] = {"cron": "*/5 * * * *", "timezone": "UTC", field: value}
    template = FireJob(job_id="j", team_id="t", application_id="a").model_dump(mode="json")
    with pytest.raises(ValidationError) as caught:
        SetSchedule(
            schedule_id="job-j", team_id="t", revision=1, command_type="cmd.job.fire", command=template, **given
        )
    [error] = caught.value.errors()
    assert error["loc"] == (field,) and says in error["msg"]


def test_a_job_run_takes_the_runs_command_rules_and_a_policy() -> None:
    base = {"run_id": "r", "team_id": "t", "application_id": "a", "deployment_id": "d", "service": "web"}
    job = {"job_id": "j", "job_name": "nightly"}
    assert RunJob(**base, **job, command=["true"]).concurrency == "forbid"
    for bad in ({"command": []}, {"command": ["a\x00b"]}, {"command": ["x"], "concurrency": "queue"}):
        with pytest.raises(ValidationError):
            RunJob(**base, **job, **bad)  # type: ignore[arg-type]
