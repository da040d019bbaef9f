"""api: minor-version upgrades of databases (the saga: a backup first, then the upgrade)."""

from berth_api.adapters import data_tables as t
from berth_common.db.revision import steps, table

revision = "api_0018"
down_revision = "api_0017"
upgrade, downgrade = steps(
    table(
        t.database_upgrades,
        "id team_id database_id from_version to_version state reason backup_id backup_skipped rolled_back "
        "requested_by created_at finished_at",
    ),
)
