"""api: invitations, the audit log, environment variables, environment groups and their attachments.

Revision ID: api_0004
Revises: api_0003
"""

from alembic import op

from berth_api.adapters import tables as t
from berth_common.db.revision import create_table, drop_tables

revision = "api_0004"
down_revision = "api_0003"


def upgrade() -> None:
    create_table(
        op,
        t.invitations,
        "id team_id email role prefix hash created_by created_at expires_at accepted_at accepted_by revoked_at",
    )
    op.create_index("invitations_team", "invitations", ["team_id", "created_at"])
    create_table(op, t.audit_log, "id at team_id user_id token_id method route target_id status fields source")
    op.create_index("audit_log_team", "audit_log", ["team_id", "id"])
    create_table(op, t.env_groups, "id team_id name redeploy_on_change created_at updated_at")
    create_table(op, t.group_attachments, "group_id application_id seq")
    op.create_index("group_attachments_application", "group_attachments", ["application_id", "seq"])
    create_table(op, t.environment_variables, "environment_id kind name position secret value sealed")
    create_table(op, t.group_variables, "group_id kind name position secret value sealed")


def downgrade() -> None:
    drop_tables(op, t.group_variables, t.environment_variables, t.group_attachments, t.env_groups)
    drop_tables(op, t.audit_log, t.invitations)
