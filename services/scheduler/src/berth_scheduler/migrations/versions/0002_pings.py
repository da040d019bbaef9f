"""scheduler: pings (the work-queue liveness probe).

Revision ID: scheduler_0002
Revises: scheduler_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "scheduler_0002"
down_revision = "scheduler_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pings",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pings")
