"""Restore drill events as notifications: subscribable, and written in words (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from berth_common.catalogue import DrillFailed, DrillSucceeded, DrillValue
from berth_notifier.domain.notice import render
from berth_notifier.domain.policy import NOTIFIED, check_pattern


def test_the_notifier_tells_a_drills_outcome() -> None:
    for type_ in ("evt.backup.drill_succeeded", "evt.backup.drill_failed"):
        assert type_ in NOTIFIED
        check_pattern(type_)
    common = {"drill_id": "d1", "backup_id": "b1", "team_id": "team1", "database_id": "db1"}
    value = DrillValue(name="items", expected=">= 5", found="20000")
    now = datetime(2026, 12, 5, tzinfo=UTC)
    ok = DrillSucceeded(**common, check="row counts: items >= 5", values=[value], restore_s=2.5, duration_s=9)
    notice = render(ok.TYPE, ok.model_dump(mode="json"), event_id="e1", time=now, public_url="https://b.example")
    assert (notice.title, notice.severity) == ("Restore drill succeeded", "success")
    assert notice.summary == (
        "Restore drill d1 of backup b1 of database db1 passed: restored in 2.5 s, items 20000 (expected >= 5)"
    )
    bad = DrillFailed(
        **common, check="query", duration_s=3, reason="the object's SHA-256 is 00, the backup recorded 11"
    )
    notice = render(bad.TYPE, bad.model_dump(mode="json"), event_id="e2", time=now, public_url="https://b.example")
    assert (notice.title, notice.severity) == ("Restore drill failed", "error")
    assert notice.summary == "Restore drill d1 of backup b1 of database db1 failed: not restored"
    assert notice.reason == "the object's SHA-256 is 00, the backup recorded 11"
