"""Tables every service schema has: processed message ids (idempotency) and the outbox."""

from __future__ import annotations

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
