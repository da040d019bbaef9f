"""metrics: whether each server's Docker engine answers (outages announced once across restarts).

Revision ID: metrics_0003
Revises: metrics_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "metrics_0003"
down_revision = "metrics_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_health",
        sa.Column("server", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("successes", sa.Integer, nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        sa.Column("last_seen_at", sa.DateTime(timezone=True)),
        sa.Column("outage_id", sa.String(64)),
        sa.Column("team_ids", sa.JSON, nullable=False),
        sa.Column("error", sa.String(500), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_health")
