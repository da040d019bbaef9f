"""scheduler: deployments (the persisted rollout state machine), their containers, routes and route ops.

Revision ID: scheduler_0003
Revises: scheduler_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "scheduler_0003"
down_revision = "scheduler_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("timeouts", sa.JSON, nullable=False),
        sa.Column("needs_build", sa.Boolean, nullable=False),
        sa.Column("build_id", sa.String(64), nullable=True),
        sa.Column("image", sa.String(512), nullable=True),
        sa.Column("previous_deployment_id", sa.String(64), nullable=True),
        sa.Column("abort_outcome", sa.String(20), nullable=True),
        sa.Column("abort_reason", sa.Text, nullable=True),
        sa.Column("abort_state", sa.String(20), nullable=True),
        sa.Column("route_plan", sa.JSON, nullable=True),
        sa.Column("route_step", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deadline_at", sa.Float, nullable=True),
        sa.Column("drain_until", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("log_seq", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("deployments_app_state", "deployments", ["application_id", "state"])
    op.create_index(
        "deployments_unfinished",
        "deployments",
        ["seq"],
        postgresql_where=sa.text("state NOT IN ('succeeded', 'failed', 'cancelled')"),
    )
    op.create_table(
        "containers",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("deployment_id", sa.String(64), nullable=False, index=True),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("replica", sa.Integer, nullable=False),
        sa.Column("host_port", sa.Integer, nullable=True),
        sa.Column("docker_id", sa.String(80), nullable=True),
        sa.Column("ready", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "routes",
        sa.Column("route_id", sa.String(64), primary_key=True),
        sa.Column("application_id", sa.String(64), nullable=False, index=True),
        sa.Column("hosts", sa.JSON, nullable=False),
        sa.Column("upstreams", sa.JSON, nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "route_ops",
        sa.Column("route_id", sa.String(64), primary_key=True),
        sa.Column("generation", sa.BigInteger, primary_key=True),
        sa.Column("deployment_id", sa.String(64), nullable=False, index=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("hosts", sa.JSON, nullable=False),
        sa.Column("upstreams", sa.JSON, nullable=False),
        sa.Column("status", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("reason", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("route_ops")
    op.drop_table("routes")
    op.drop_table("containers")
    op.drop_table("deployments")
