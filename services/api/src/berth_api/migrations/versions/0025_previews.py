"""api: preview environments per pull request (settings per application, one row per preview)."""

from berth_api.adapters import preview_tables as t
from berth_common.db.revision import steps, table

revision = "api_0025"
down_revision = "api_0024"
upgrade, downgrade = steps(
    table(
        t.preview_settings,
        "id team_id host_pattern allow_forks database database_engine ttl_hours max_previews sealed",
    ),
    table(
        t.previews,
        "id team_id application_id number forge title head_ref head_commit head_repository preview_application_id "
        "database_id deployment_id host state want reason comment_id comment_sent last_activity_at created_at",
    ),
)
