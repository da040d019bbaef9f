"""scheduler: the digest of a deployment's prebuilt image (pulled or found on the server).

Revision ID: scheduler_0005
Revises: scheduler_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "scheduler_0005"
down_revision = "scheduler_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deployments", sa.Column("image_digest", sa.String(512), nullable=True))


def downgrade() -> None:
    op.drop_column("deployments", "image_digest")
