"""The first revision of every service schema: the tables every schema has (:mod:`berth_common.db.tables`).

A service's ``0001_base.py`` names its own revision id and takes ``upgrade`` and ``downgrade`` from here.
"""

from __future__ import annotations

import sqlalchemy as sa

from berth_common.db.revision import create_table, drop_tables
from berth_common.db.tables import outbox, processed_messages


def upgrade() -> None:
    from alembic import op

    create_table(op, processed_messages, ["consumer", "message_id", "processed_at"])
    create_table(op, outbox, ["id", "subject", "envelope", "headers", "created_at", "published_at"])
    op.create_index("outbox_unpublished", "outbox", ["created_at"], postgresql_where=sa.text("published_at IS NULL"))


def downgrade() -> None:
    from alembic import op

    drop_tables(op, outbox, processed_messages)
