"""api: git forge webhooks (sealed secret per application), received delivery ids, debounced pushes, commit
status targets (sealed token) and the statuses owed per deployment."""

from berth_api.adapters import webhook_tables as t
from berth_common.db.revision import steps, table

revision = "api_0021"
down_revision = "api_0020"
upgrade, downgrade = steps(
    table(
        t.webhooks,
        "id team_id application_id sealed watch_paths tags created_by created_at rotated_at last_delivery_at "
        "last_result",
    ),
    table(t.webhook_deliveries, "webhook_id delivery_id received_at"),
    table(
        t.webhook_pushes,
        "application_id team_id commit ref forge delivery_id pushes first_at received_at due_at",
    ),
    table(t.webhook_status_targets, "id forge api_url repository sealed link_base"),
    table(t.webhook_status_reports, "deployment_id webhook_id commit sent_state attempts next_at last_error"),
)
