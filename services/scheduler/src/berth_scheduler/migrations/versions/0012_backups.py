"""scheduler: database backups, their verified objects, and restores."""

import sqlalchemy as sa

from berth_common.db.revision import index, steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0012"
down_revision = "scheduler_0011"
BACKUPS = """id team_id database_id engine database state command compression uploads reason worker heartbeat_at
started_at finished_at"""
OBJECTS = "backup_id destination database_id key size sha256 created_at pruned_at"
KEPT = sa.text("pruned_at IS NULL")
RESTORES = "id backup_id state reason started_at finished_at"

upgrade, downgrade = steps(
    table(t.backups, BACKUPS),
    index("backups_running", t.backups, "heartbeat_at", postgresql_where=sa.text("state = 'running'")),
    table(t.backup_objects, OBJECTS),
    index("backup_objects_kept", t.backup_objects, "database_id destination", postgresql_where=KEPT),
    table(t.restores, RESTORES),
)
