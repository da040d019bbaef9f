"""Tables every service schema has: processed message ids (idempotency) and the outbox."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

processed_messages = sa.Table(
    "processed_messages",
    metadata,
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("message_id", sa.String(128), primary_key=True),
    sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("envelope", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
)


def create_base_tables(op: Any) -> None:
    """Called from each service's first migration."""
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("outbox_unpublished", "outbox", ["created_at"], postgresql_where=sa.text("published_at IS NULL"))


def drop_base_tables(op: Any) -> None:
    op.drop_table("outbox")
    op.drop_table("processed_messages")
