"""scheduler: pings (the work-queue liveness probe).

Revision ID: scheduler_0002
Revises: scheduler_0001
"""

from alembic import op

from berth_common.db.revision import create_table, drop_tables
from berth_scheduler.adapters import tables as t

revision = "scheduler_0002"
down_revision = "scheduler_0001"


def upgrade() -> None:
    create_table(op, t.pings, "nonce count received_at")


def downgrade() -> None:
    drop_tables(op, t.pings)
