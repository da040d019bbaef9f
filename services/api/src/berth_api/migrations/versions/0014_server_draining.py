"""api: a server can be draining (its applications move away; nothing new is placed there)."""

from alembic import op

from berth_api.adapters import tables as t
from berth_common.db.revision import add_constraint

revision = "api_0014"
down_revision = "api_0013"
BEFORE = "state IN ('validating', 'ready', 'unreachable', 'invalid')"


def upgrade() -> None:
    op.drop_constraint("servers_state", "servers", type_="check")
    add_constraint(op, t.servers, "servers_state")


def downgrade() -> None:
    op.execute("UPDATE servers SET state = 'ready' WHERE state = 'draining'")
    op.drop_constraint("servers_state", "servers", type_="check")
    op.create_check_constraint("servers_state", "servers", BEFORE)
