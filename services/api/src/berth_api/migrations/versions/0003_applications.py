"""api: projects, environments, applications (variables sealed, hosts), deployments and their projection.

Revision ID: api_0003
Revises: api_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "api_0003"
down_revision = "api_0002"
branch_labels = None
depends_on = None


def _times() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.String(500), nullable=False, server_default=""),
        *_times(),
        sa.UniqueConstraint("team_id", "name", name="projects_team_name"),
    )
    op.create_table(
        "environments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("project_id", "name", name="environments_project_name"),
    )
    op.create_index("environments_team", "environments", ["team_id"])
    op.create_table(
        "applications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "environment_id", sa.String(32), sa.ForeignKey("environments.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        *_times(),
        sa.UniqueConstraint("environment_id", "name", name="applications_environment_name"),
    )
    op.create_index("applications_team", "applications", ["team_id", "name"])
    op.create_table(
        "variables",
        sa.Column(
            "application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("secret", sa.Boolean, nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.CheckConstraint("kind IN ('runtime', 'build')", name="variables_kind"),
        sa.CheckConstraint(
            "(secret AND value IS NULL AND sealed IS NOT NULL) OR (NOT secret AND sealed IS NULL)",
            name="variables_secret_sealed",
        ),
    )
    op.create_table(
        "hosts",
        sa.Column("host", sa.String(253), primary_key=True),
        sa.Column(
            "application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("generated", sa.Boolean, nullable=False),
    )
    op.create_index("hosts_application", "hosts", ["application_id"])
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rollback_of", sa.String(32), nullable=True),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("image", sa.String(255), nullable=True),
        sa.Column("commit", sa.String(64), nullable=True),
        sa.Column("generated_dockerfile", sa.Text, nullable=True),
        sa.Column("previous_deployment_id", sa.String(64), nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        *_times(),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'building', 'starting', 'verifying', 'routing', 'draining', 'stopping_old', "
            "'succeeded', 'failed', 'cancelled')",
            name="deployments_state",
        ),
        sa.UniqueConstraint("application_id", "number", name="deployments_application_number"),
    )
    op.create_index("deployments_app_created", "deployments", ["application_id", "created_at"])
    op.create_index("deployments_app_finished", "deployments", ["application_id", "state", "finished_at"])


def downgrade() -> None:
    op.drop_table("deployments")
    op.drop_table("hosts")
    op.drop_table("variables")
    op.drop_table("applications")
    op.drop_table("environments")
    op.drop_table("projects")
