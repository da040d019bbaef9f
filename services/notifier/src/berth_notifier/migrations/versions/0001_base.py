"""notifier schema: base tables (processed message ids, outbox).

Revision ID: notifier_0001
Revises:
"""

from alembic import op

from berth_common.db.tables import create_base_tables, drop_base_tables

revision = "notifier_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_base_tables(op)


def downgrade() -> None:
    drop_base_tables(op)
