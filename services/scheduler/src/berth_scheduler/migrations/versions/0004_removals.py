"""scheduler: removals (taking an application down, persisted step by step).

Revision ID: scheduler_0004
Revises: scheduler_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "scheduler_0004"
down_revision = "scheduler_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "removals",
        sa.Column("application_id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        sa.Column("drain_grace_s", sa.Float, nullable=False),
        sa.Column("route_plan", sa.JSON, nullable=True),
        sa.Column("deadline_at", sa.Float, nullable=True),
        sa.Column("drain_until", sa.Float, nullable=True),
        sa.Column("containers", sa.JSON, nullable=False),
        sa.Column("images", sa.JSON, nullable=False),
        sa.Column("routes_removed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("containers_removed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("images_removed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index(
        "removals_active",
        "removals",
        ["application_id"],
        postgresql_where=sa.text("phase NOT IN ('removed', 'failed')"),
    )


def downgrade() -> None:
    op.drop_table("removals")
