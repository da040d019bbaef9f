"""builder: cancelled builds (a status, and the cancel requests a builder process may have to pick up)."""

from alembic import op

from berth_builder.adapters import tables as t
from berth_common.db.revision import add_constraint, create_table, drop_tables

revision = "builder_0003"
down_revision = "builder_0002"


def upgrade() -> None:
    op.drop_constraint("builds_status", "builds", type_="check")
    add_constraint(op, t.builds, "builds_status")
    create_table(op, t.cancels, "build_id deployment_id reason requested_at")


def downgrade() -> None:
    drop_tables(op, t.cancels)
    op.execute("DELETE FROM builds WHERE status = 'cancelled'")
    op.drop_constraint("builds_status", "builds", type_="check")
    op.create_check_constraint("builds_status", "builds", "status IN ('running', 'retrying', 'succeeded', 'failed')")
