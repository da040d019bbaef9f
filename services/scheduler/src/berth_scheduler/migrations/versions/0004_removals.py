"""scheduler: removals (taking an application down, persisted step by step).

Revision ID: scheduler_0004
Revises: scheduler_0003
"""

import sqlalchemy as sa
from alembic import op

from berth_common.db.revision import create_table, drop_tables
from berth_scheduler.adapters import tables as t

revision = "scheduler_0004"
down_revision = "scheduler_0003"


def upgrade() -> None:
    create_table(
        op,
        t.removals,
        """application_id team_id phase attempt drain_grace_s route_plan deadline_at drain_until containers images
        routes_removed containers_removed images_removed reason requested_at finished_at version""",
    )
    op.create_index(
        "removals_active",
        "removals",
        ["application_id"],
        postgresql_where=sa.text("phase NOT IN ('removed', 'failed')"),
    )


def downgrade() -> None:
    drop_tables(op, t.removals)
