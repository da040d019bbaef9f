"""api: image registries (a team's credentials for pulling prebuilt images) and the digest of a deployment's
pulled image.

``registries`` holds one row per team and registry host (the password or token sealed like a secret
variable); ``deployments.image_digest`` is the ``repo@sha256:...`` the scheduler pulled, which a rollback
runs.

Revision ID: api_0009
Revises: api_0008
"""

import sqlalchemy as sa
from alembic import op

revision = "api_0009"
down_revision = "api_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("team_id", "name", name="registries_team_name"),
        sa.UniqueConstraint("team_id", "host", name="registries_team_host"),
    )
    op.add_column("deployments", sa.Column("image_digest", sa.String(512), nullable=True))


def downgrade() -> None:
    op.drop_column("deployments", "image_digest")
    op.drop_table("registries")
