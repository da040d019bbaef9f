"""api: identity (users, teams, memberships with a role, api tokens stored as hashes)."""

from berth_api.adapters import tables as t
from berth_common.db.revision import steps, table

revision = "api_0002"
down_revision = "api_0001"
upgrade, downgrade = steps(
    table(t.users, "id email name created_at disabled_at"),
    table(t.teams, "id name created_at"),
    table(t.memberships, "user_id team_id role created_at"),
    table(t.api_tokens, "id user_id team_id name prefix hash created_at expires_at revoked_at last_used_at"),
)
