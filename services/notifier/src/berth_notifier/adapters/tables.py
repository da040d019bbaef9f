"""Tables of the notifier schema (the migration ``notifier_0002`` creates them from these definitions)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

channels = sa.Table(
    "channels",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("settings", sa.JSON, nullable=False),  # the non-secret part of the target
    sa.Column("secret_blob", sa.LargeBinary, nullable=False),  # AES-GCM, see adapters.secretbox
    sa.Column("secrets_set", sa.JSON, nullable=False),  # names of the secret fields that hold a value
    sa.Column("target", sa.String(300), nullable=False),  # a hint without secrets
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("team_id", "name", name="channels_team_name"),
    sa.CheckConstraint("kind IN ('slack', 'discord', 'email', 'telegram', 'webhook')", name="channels_kind"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False, index=True),
    sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_types", sa.JSON, nullable=False),
    sa.Column("project_id", sa.String(64), nullable=True),
    sa.Column("application_id", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# Which team and project an application belongs to, learned from deployment events (container and alert
# events may carry only an application id).
applications = sa.Table(
    "applications",
    metadata,
    sa.Column("application_id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("project_id", sa.String(64), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_type", sa.String(128), nullable=False),
    sa.Column("group_key", sa.String(256), nullable=False),
    sa.Column("first_event_id", sa.String(128), nullable=False),
    sa.Column("last_event_id", sa.String(128), nullable=False),
    sa.Column("notice", sa.JSON, nullable=False),
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("is_test", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("channel_id", "first_event_id", name="deliveries_channel_event"),
    sa.CheckConstraint("status IN ('pending', 'sending', 'delivered', 'failed')", name="deliveries_status"),
)
sa.Index(
    "deliveries_due",
    deliveries.c.channel_id,
    deliveries.c.next_attempt_at,
    postgresql_where=deliveries.c.status == "pending",
)
sa.Index("deliveries_group", deliveries.c.channel_id, deliveries.c.group_key, deliveries.c.created_at)
sa.Index("deliveries_log", deliveries.c.team_id, deliveries.c.created_at)
