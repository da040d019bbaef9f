"""api: volumes' backups, restores and schedules (on the backups' tables), and restore drills with their
schedules."""

from berth_api.adapters import data_tables as t
from berth_common.db.revision import columns, steps, table

revision = "api_0019"
down_revision = "api_0018"
upgrade, downgrade = steps(
    columns(t.backups, "application_id volume server_id"),
    columns(t.restores, "application_id volume target_source"),
    columns(t.backup_schedules, "application_id volume source"),
    table(
        t.drills,
        "id team_id database_id backup_id state reason engine destination_id check check_text values schedule_id "
        "requested_by restore_s duration_s created_at finished_at",
    ),
    table(
        t.drill_schedules,
        "database_id team_id cron timezone grace_s destination_id check revision updated_by updated_at",
    ),
)
