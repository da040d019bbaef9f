"""metrics: whether each server's Docker engine answers (outages announced once across restarts).

Revision ID: metrics_0003
Revises: metrics_0002
"""

from alembic import op

from berth_common.db.revision import create_table, drop_tables
from berth_metrics.adapters import tables as t

revision = "metrics_0003"
down_revision = "metrics_0002"


def upgrade() -> None:
    create_table(
        op,
        t.server_health,
        "server status failures successes failing_since last_seen_at outage_id team_ids error updated_at",
    )


def downgrade() -> None:
    drop_tables(op, t.server_health)
