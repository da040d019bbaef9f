"""`evt.job.failed` as a notification: subscribable, delivered to the job's team, and written in words
(pure): which job of which application, how its run ended, why, and its last lines kept out of the facts."""

from __future__ import annotations

from datetime import UTC, datetime

from berth_common.catalogue import JobFailed, consumed_by
from berth_notifier.domain.audience import audience
from berth_notifier.domain.notice import render
from berth_notifier.domain.policy import check_pattern, matches

NOW = datetime(2026, 12, 5, 3, 10, tzinfo=UTC)


def _failed(**changes: object) -> JobFailed:
    values: dict[str, object] = {
        "job_id": "j1",
        "job_name": "nightly-cleanup",
        "run_id": "r1",
        "team_id": "team1",
        "application_id": "app1",
        "service": "web",
        "status": "failed",
        "exit_code": 3,
        "reason": "exited with code 3",
        "last_lines": ["cleaning", "boom"],
    }
    return JobFailed.model_validate(values | changes)


def _render(event: JobFailed):  # type: ignore[no-untyped-def]
    return render(event.TYPE, event.model_dump(mode="json"), event_id="e1", time=NOW, public_url="https://b.example")


def test_a_failed_job_says_which_job_of_which_application_and_how() -> None:
    assert JobFailed in consumed_by("notifier")
    check_pattern("evt.job.failed")
    assert matches("evt.job.*", "evt.job.failed")
    event = _failed()
    assert audience(event).team_id == "team1"
    notice = _render(event)
    assert (notice.title, notice.severity) == ("Cron job failed", "error")
    assert notice.summary == "The cron job nightly-cleanup of application app1 exited with code 3"
    assert notice.reason == "exited with code 3"


def test_a_timed_out_run_and_a_firing_that_could_not_run() -> None:
    timed_out = _render(_failed(status="timed_out", exit_code=137, reason="timed out after 60 s (killed)"))
    assert timed_out.summary == "The cron job nightly-cleanup of application app1 timed out and was killed"
    lost = _render(_failed(exit_code=None, reason="the application has no live deployment to run the job in"))
    assert lost.summary == "The cron job nightly-cleanup of application app1 could not run"
    assert lost.reason == "the application has no live deployment to run the job in"
