"""builder: builds (one row per build id: idempotency, results to re-emit, the image cache by key).

Revision ID: builder_0002
Revises: builder_0001
"""

import sqlalchemy as sa
from alembic import op

from berth_builder.adapters import tables as t
from berth_common.db.revision import create_table, drop_tables

revision = "builder_0002"
down_revision = "builder_0001"


def upgrade() -> None:
    create_table(
        op,
        t.builds,
        """build_id deployment_id application_id status repository ref image_tag commit cache_key image_id reused
        generated_dockerfile stage reason duration_s attempts created_at heartbeat_at finished_at""",
        omit=["builds_status"],
    )
    op.create_check_constraint("builds_status", "builds", "status IN ('running', 'retrying', 'succeeded', 'failed')")
    op.create_index(
        "builds_cache_key",
        "builds",
        ["cache_key", "finished_at"],
        postgresql_where=sa.text("status = 'succeeded'"),
    )
    op.create_index("builds_deployment", "builds", ["deployment_id"])


def downgrade() -> None:
    drop_tables(op, t.builds)
