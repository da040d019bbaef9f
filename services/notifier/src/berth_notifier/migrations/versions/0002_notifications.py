"""notifier: channels, subscriptions, the application -> team map, deliveries (queue and log).

Revision ID: notifier_0002
Revises: notifier_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "notifier_0002"
down_revision = "notifier_0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False, now: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=sa.func.now() if now else None)


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("secret_blob", sa.LargeBinary, nullable=False),
        sa.Column("secrets_set", sa.JSON, nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        _ts("created_at", now=True),
        _ts("updated_at", now=True),
        sa.UniqueConstraint("team_id", "name", name="channels_team_name"),
        sa.CheckConstraint("kind IN ('slack', 'discord', 'email', 'telegram', 'webhook')", name="channels_kind"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_types", sa.JSON, nullable=False),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("application_id", sa.String(64), nullable=True),
        _ts("created_at", now=True),
    )
    op.create_index("ix_subscriptions_team_id", "subscriptions", ["team_id"])
    op.create_index("ix_subscriptions_channel_id", "subscriptions", ["channel_id"])
    op.create_table(
        "applications",
        sa.Column("application_id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=True),
        _ts("updated_at", now=True),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("group_key", sa.String(256), nullable=False),
        sa.Column("first_event_id", sa.String(128), nullable=False),
        sa.Column("last_event_id", sa.String(128), nullable=False),
        sa.Column("notice", sa.JSON, nullable=False),
        sa.Column("count", sa.Integer, nullable=False, server_default="1"),
        _ts("first_at"),
        _ts("last_at"),
        sa.Column("is_test", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        _ts("next_attempt_at", nullable=True),
        _ts("claimed_at", nullable=True),
        _ts("delivered_at", nullable=True),
        _ts("created_at", now=True),
        _ts("updated_at", now=True),
        sa.UniqueConstraint("channel_id", "first_event_id", name="deliveries_channel_event"),
        sa.CheckConstraint("status IN ('pending', 'sending', 'delivered', 'failed')", name="deliveries_status"),
    )
    op.create_index(
        "deliveries_due",
        "deliveries",
        ["channel_id", "next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("deliveries_group", "deliveries", ["channel_id", "group_key", "created_at"])
    op.create_index("deliveries_log", "deliveries", ["team_id", "created_at"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("applications")
    op.drop_table("subscriptions")
    op.drop_table("channels")
