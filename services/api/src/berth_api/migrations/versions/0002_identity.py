"""api: identity (users, teams, memberships with a role, api tokens stored as hashes).

Revision ID: api_0002
Revises: api_0001
"""

from alembic import op

from berth_api.adapters import tables as t
from berth_common.db.revision import create_table, drop_tables

revision = "api_0002"
down_revision = "api_0001"


def upgrade() -> None:
    create_table(op, t.users, "id email name created_at disabled_at")
    create_table(op, t.teams, "id name created_at")
    create_table(op, t.memberships, "user_id team_id role created_at")
    op.create_index("memberships_team", "memberships", ["team_id"])
    create_table(op, t.api_tokens, "id user_id team_id name prefix hash created_at expires_at revoked_at last_used_at")
    op.create_index("api_tokens_team", "api_tokens", ["team_id"])
    op.create_index("api_tokens_user", "api_tokens", ["user_id"])


def downgrade() -> None:
    drop_tables(op, t.api_tokens, t.memberships, t.teams, t.users)
