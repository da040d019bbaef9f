"""Backup events reach a team's channels through the notifier (real bus, local receivers): a failure with
the tool's reason and a success with its copies, each once, to the channels subscribed to them only."""

from __future__ import annotations

import asyncio

from berth_common.catalogue import BackupFailed, BackupObject, BackupSucceeded, SlackTarget
from tests.notifier.conftest import wait_for
from tests.support.receivers import SlackReceiver

TEAM = "team-acme"
REASON = 'pg_dump exited with code 1: pg_dump: error: database "shop" does not exist'


async def test_backup_failures_and_successes_are_delivered(notifier) -> None:
    failures, everything, other = [await SlackReceiver().start() for _ in range(3)]
    try:
        await notifier.channel(TEAM, "failures", SlackTarget(webhook_url=failures.url()), ["evt.backup.failed"])
        await notifier.channel(TEAM, "backups", SlackTarget(webhook_url=everything.url()), ["evt.backup.*"])
        await notifier.channel("team-other", "theirs", SlackTarget(webhook_url=other.url()), ["evt.backup.*"])
        common = {"team_id": TEAM, "database_id": "db-shop", "engine": "postgresql", "database": "shop"}
        await notifier.publish(BackupFailed(backup_id="b1", reason=REASON, **common))
        copy = BackupObject(
            destination="s3:http://s3.test/backups", key="db-shop/x.dump.gz", size=2048, sha256="a" * 64
        )
        await notifier.publish(
            BackupSucceeded(backup_id="b2", compression="gzip", objects=[copy], duration_s=3.0, **common)
        )
        [failed] = await failures.wait_accepted(1)
        got = await everything.wait_accepted(2)

        async def settled() -> bool:
            return {d.status for d in await notifier.deliveries(TEAM)} == {"delivered"}

        await wait_for(settled)
        assert sorted(d.event_type for d in await notifier.deliveries(TEAM)) == [
            "evt.backup.failed",
            "evt.backup.failed",
            "evt.backup.succeeded",
        ]
        text = str(failed.json)
        assert "Backup failed" in text and "pg_dump exited with code 1: pg_dump: error: database" in text
        assert any("is verified: s3:http://s3.test/backups (2.0 KB)" in str(r.json) for r in got)
        await asyncio.sleep(0.5)
        assert other.requests == [] and len(failures.requests) == 1
    finally:
        for r in (failures, everything, other):
            await r.stop()
