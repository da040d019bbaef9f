"""`evt.schedule.missed` as a notification: subscribable, delivered to the schedule's team, and written in
words (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from berth_common.catalogue import ScheduleMissed, consumed_by
from berth_notifier.domain.audience import audience
from berth_notifier.domain.notice import render
from berth_notifier.domain.policy import check_pattern, matches

NOW = datetime(2026, 12, 5, 3, 10, tzinfo=UTC)


def test_a_missed_schedule_says_what_when_and_how_late() -> None:
    assert ScheduleMissed in consumed_by("notifier")
    check_pattern("evt.schedule.missed")
    check_pattern("evt.schedule.*")
    assert matches("evt.schedule.*", "evt.schedule.missed")
    missed = ScheduleMissed(
        schedule_id="nightly",
        team_id="team1",
        command_type="cmd.backup.start",
        target_id="db-7",
        due_at=datetime(2026, 12, 5, 2, 30, tzinfo=UTC),
        late_s=2410.0,
        grace_s=300,
        reason="the scheduler was not running",
    )
    assert audience(missed).team_id == "team1"
    notice = render(
        missed.TYPE, missed.model_dump(mode="json"), event_id="e1", time=NOW, public_url="https://b.example"
    )
    assert (notice.title, notice.severity) == ("Schedule missed", "warning")
    assert notice.summary == (
        "The scheduled backup of db-7 (schedule nightly) due at 2026-12-05 02:30 UTC did not run on time; "
        "it runs once now, 40 min late"
    )
    assert notice.reason == "the scheduler was not running"
    assert notice.team_id == "team1"
    assert notice.facts["schedule_id"] == "nightly" and notice.facts["late_s"] == 2410.0
