"""notifier: channels, subscriptions, the application -> team map, deliveries (queue and log)."""

from berth_common.db.revision import index, steps, table
from berth_notifier.adapters import tables as t

revision = "notifier_0002"
down_revision = "notifier_0001"
CHANNELS = "id team_id name kind enabled settings secret_blob secrets_set target created_at updated_at"
DELIVERIES = """id team_id channel_id event_type group_key first_event_id last_event_id notice count first_at last_at
is_test status attempts max_attempts last_error next_attempt_at claimed_at delivered_at created_at updated_at"""

upgrade, downgrade = steps(
    table(t.channels, CHANNELS),
    table(t.subscriptions, "id team_id channel_id event_types project_id application_id created_at"),
    index("ix_subscriptions_channel_id", t.subscriptions, "channel_id"),
    table(t.applications, "application_id team_id project_id updated_at"),
    table(t.deliveries, DELIVERIES),
)
