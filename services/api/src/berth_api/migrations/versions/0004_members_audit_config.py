"""api: invitations, the audit log, environment variables, environment groups and their attachments."""

from berth_api.adapters import tables as t
from berth_common.db.revision import steps, table

revision = "api_0004"
down_revision = "api_0003"
INVITATIONS = "id team_id email role prefix hash created_by created_at expires_at accepted_at accepted_by revoked_at"
AUDIT_LOG = "id at team_id user_id token_id method route target_id status fields source"

upgrade, downgrade = steps(
    table(t.invitations, INVITATIONS),
    table(t.audit_log, AUDIT_LOG, omit=["audit_log_at"]),  # api_0007 adds it
    table(t.env_groups, "id team_id name redeploy_on_change created_at updated_at"),
    table(t.group_attachments, "group_id application_id seq"),
    table(t.environment_variables, "environment_id kind name position secret value sealed"),
    table(t.group_variables, "group_id kind name position secret value sealed"),
)
