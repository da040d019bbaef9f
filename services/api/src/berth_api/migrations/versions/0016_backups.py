"""api: backup destinations, the projection of backups and restores, and databases' backup schedules."""

from berth_api.adapters import data_tables as t
from berth_common.db.revision import steps, table

revision = "api_0016"
down_revision = "api_0015"
upgrade, downgrade = steps(
    table(t.backup_destinations, "id team_id name kind settings sealed created_by created_at"),
    table(
        t.backups,
        "id team_id database_id state reason engine database compression destinations objects schedule_id "
        "requested_by duration_s created_at started_at finished_at",
    ),
    table(
        t.restores,
        "id team_id database_id backup_id target_database_id target state reason pre_backup_id origin_id key "
        "sha256 compression source_database requested_by duration_s created_at finished_at",
    ),
    table(
        t.backup_schedules,
        "database_id team_id cron timezone grace_s destination_ids retention compression revision updated_by "
        "updated_at",
    ),
)
