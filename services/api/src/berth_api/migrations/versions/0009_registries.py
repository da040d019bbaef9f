"""api: image registries (a team's credentials for pulling prebuilt images) and the digest of a deployment's
pulled image.

``registries`` holds one row per team and registry host (the password or token sealed like a secret
variable); ``deployments.image_digest`` is the ``repo@sha256:...`` the scheduler pulled, which a rollback
runs.

Revision ID: api_0009
Revises: api_0008
"""

from alembic import op

from berth_api.adapters import tables as t
from berth_common.db.revision import add_columns, create_table, drop_columns, drop_tables

revision = "api_0009"
down_revision = "api_0008"


def upgrade() -> None:
    create_table(op, t.registries, "id team_id name host username sealed created_by created_at")
    add_columns(op, t.deployments, "image_digest")


def downgrade() -> None:
    drop_columns(op, t.deployments, "image_digest")
    drop_tables(op, t.registries)
