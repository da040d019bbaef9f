"""Tables of the scheduler schema."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

pings = sa.Table(
    "pings",
    metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)
