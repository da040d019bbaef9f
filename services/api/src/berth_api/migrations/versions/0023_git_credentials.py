"""api: private repositories: a deploy key and an access token per application (sealed), and the pinned
SSH host keys of its git server."""

from berth_api.adapters import git_tables as t
from berth_common.db.revision import steps, table

revision = "api_0023"
down_revision = "api_0022"
upgrade, downgrade = steps(
    table(
        t.git_credentials,
        "id team_id application_id kind sealed public_key username created_by created_at rotated_at",
    ),
    table(t.git_host_keys, "application_id host key_type offered key source pinned_by pinned_at"),
)
