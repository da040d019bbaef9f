"""notifier: channels, subscriptions, the application -> team map, deliveries (queue and log).

Revision ID: notifier_0002
Revises: notifier_0001
"""

from alembic import op

from berth_common.db.revision import create_table, drop_tables
from berth_notifier.adapters import tables as t

revision = "notifier_0002"
down_revision = "notifier_0001"


def upgrade() -> None:
    create_table(
        op,
        t.channels,
        "id team_id name kind enabled settings secret_blob secrets_set target created_at updated_at",
    )
    create_table(op, t.subscriptions, "id team_id channel_id event_types project_id application_id created_at")
    op.create_index("ix_subscriptions_channel_id", "subscriptions", ["channel_id"])
    create_table(op, t.applications, "application_id team_id project_id updated_at")
    create_table(
        op,
        t.deliveries,
        """id team_id channel_id event_type group_key first_event_id last_event_id notice count first_at last_at
        is_test status attempts max_attempts last_error next_attempt_at claimed_at delivered_at created_at
        updated_at""",
    )


def downgrade() -> None:
    drop_tables(op, t.deliveries, t.applications, t.subscriptions, t.channels)
