"""scheduler: the digest of a deployment's prebuilt image (pulled or found on the server).

Revision ID: scheduler_0005
Revises: scheduler_0004
"""

from alembic import op

from berth_common.db.revision import add_columns, drop_columns
from berth_scheduler.adapters import tables as t

revision = "scheduler_0005"
down_revision = "scheduler_0004"


def upgrade() -> None:
    add_columns(op, t.deployments, "image_digest")


def downgrade() -> None:
    drop_columns(op, t.deployments, "image_digest")
