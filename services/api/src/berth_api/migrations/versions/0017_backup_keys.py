"""api: a team's backup key (sealed), for backups encrypted with it; whether a schedule's backups are."""

from berth_api.adapters import data_tables as t
from berth_common.db.revision import columns, steps, table

revision = "api_0017"
down_revision = "api_0016"
upgrade, downgrade = steps(
    table(t.backup_keys, "id key_id sealed created_at"),
    columns(t.backup_schedules, "encrypt"),
)
