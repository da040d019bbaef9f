"""api: invitations, the audit log, environment variables, environment groups and their attachments.

Revision ID: api_0004
Revises: api_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "api_0004"
down_revision = "api_0003"
branch_labels = None
depends_on = None


def _variables(name: str, owner: str, owner_table: str) -> None:
    op.create_table(
        name,
        sa.Column(owner, sa.String(32), sa.ForeignKey(f"{owner_table}.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("secret", sa.Boolean, nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.CheckConstraint("kind IN ('runtime', 'build')", name=f"{name}_kind"),
        sa.CheckConstraint(
            "(secret AND value IS NULL AND sealed IS NOT NULL) OR (NOT secret AND sealed IS NULL)",
            name=f"{name}_secret_sealed",
        ),
    )


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(32), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.String(32), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'developer', 'viewer')", name="invitations_role"),
    )
    op.create_index("invitations_team", "invitations", ["team_id", "created_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("token_id", sa.String(32), nullable=True),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("route", sa.String(300), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("fields", sa.JSON, nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
    )
    op.create_index("audit_log_team", "audit_log", ["team_id", "id"])
    op.create_table(
        "env_groups",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("redeploy_on_change", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("team_id", "name", name="env_groups_team_name"),
    )
    op.create_table(
        "group_attachments",
        sa.Column("group_id", sa.String(32), sa.ForeignKey("env_groups.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    )
    op.create_index("group_attachments_application", "group_attachments", ["application_id", "seq"])
    _variables("environment_variables", "environment_id", "environments")
    _variables("group_variables", "group_id", "env_groups")


def downgrade() -> None:
    op.drop_table("group_variables")
    op.drop_table("environment_variables")
    op.drop_table("group_attachments")
    op.drop_table("env_groups")
    op.drop_table("audit_log")
    op.drop_table("invitations")
