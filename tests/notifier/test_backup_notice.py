"""Backup and restore events as notifications: subscribable, and written in words (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from berth_common.catalogue import BackupFailed, BackupMissed, BackupObject, BackupSucceeded, RestoreFailed
from berth_notifier.domain.notice import render
from berth_notifier.domain.policy import NOTIFIED, check_pattern

NOW = datetime(2026, 12, 5, tzinfo=UTC)
COMMON = {"backup_id": "b1", "team_id": "team1", "database_id": "db1"}


def _notice(event):
    return render(event.TYPE, event.model_dump(mode="json"), event_id="e1", time=NOW, public_url="https://b.example")


def test_backup_events_reach_the_notifier_and_are_subscribable() -> None:
    for type_ in ("evt.backup.succeeded", "evt.backup.failed", "evt.backup.missed"):
        assert type_ in NOTIFIED
        check_pattern(type_)
    check_pattern("evt.backup.*")
    check_pattern("evt.restore.failed")
    assert "evt.backup.started" not in NOTIFIED


def test_a_verified_backup_says_where_it_is_and_how_big() -> None:
    obj = BackupObject(destination="s3:http://s3.example/backups", key="db1/x.dump.gz", size=3 << 20, sha256="a" * 64)
    notice = _notice(
        BackupSucceeded(**COMMON, engine="postgresql", database="shop", compression="gzip", objects=[obj], duration_s=4)
    )
    assert (notice.title, notice.severity) == ("Backup succeeded", "success")
    assert notice.summary == (
        "Backup b1 of database db1 (postgresql, shop) is verified: s3:http://s3.example/backups (3.0 MB)"
    )


def test_a_failed_backup_is_an_error_with_the_tools_reason() -> None:
    notice = _notice(
        BackupFailed(**COMMON, engine="postgresql", reason='pg_dump exited with code 1: database "x" does not exist')
    )
    assert (notice.title, notice.severity) == ("Backup failed", "error")
    assert notice.summary == "Backup b1 of database db1 (postgresql, all databases) failed: no good backup was made"
    assert notice.reason == 'pg_dump exited with code 1: database "x" does not exist'


def test_a_missed_backup_and_a_failed_restore() -> None:
    missed = _notice(BackupMissed(**COMMON, schedule_id="s1", due_at="2026-12-05T03:00:00Z"))
    assert (missed.title, missed.severity) == ("Backup missed", "warning")
    assert missed.summary == "The scheduled backup of database db1 due at 2026-12-05T03:00:00Z did not run"
    failed = _notice(
        RestoreFailed(restore_id="r1", **COMMON, container="pg", database="shop", reason="pg_restore exited with 1")
    )
    assert (failed.title, failed.severity) == ("Restore failed", "error")
    assert failed.summary == "Backup b1 of database db1 could not be restored into pg (database shop)"
    assert failed.reason == "pg_restore exited with 1"
