"""api: an index on the audit log's time, so the retention purge finds its oldest rows batch by batch
without reading the whole table.

On an installation with a large audit log the index is built once, at the upgrade (writes of audit rows
wait for it).

Revision ID: api_0007
Revises: api_0006
"""

from alembic import op

revision = "api_0007"
down_revision = "api_0006"


def upgrade() -> None:
    op.create_index("audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("audit_log_at", table_name="audit_log")
