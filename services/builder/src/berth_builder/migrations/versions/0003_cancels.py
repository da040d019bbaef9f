"""builder: cancelled builds (a status, and the cancel requests a builder process may have to pick up).

Revision ID: builder_0003
Revises: builder_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "builder_0003"
down_revision = "builder_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("builds_status", "builds", type_="check")
    op.create_check_constraint(
        "builds_status", "builds", "status IN ('running', 'retrying', 'succeeded', 'failed', 'cancelled')"
    )
    op.create_table(
        "cancels",
        sa.Column("build_id", sa.String(64), primary_key=True),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cancels")
    op.execute("DELETE FROM builds WHERE status = 'cancelled'")
    op.drop_constraint("builds_status", "builds", type_="check")
    op.create_check_constraint("builds_status", "builds", "status IN ('running', 'retrying', 'succeeded', 'failed')")
