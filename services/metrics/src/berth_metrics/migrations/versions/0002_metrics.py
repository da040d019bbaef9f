"""metrics: series, raw samples and rollups, rollup progress, threshold rules, alert states and history.

Revision ID: metrics_0002
Revises: metrics_0001
"""

from alembic import op

from berth_common.db.revision import create_table, drop_tables
from berth_metrics.adapters import tables as t

revision = "metrics_0002"
down_revision = "metrics_0001"

# The value columns of samples and rollups at this revision; a rollup also has ``n`` and a ``*_max`` column
# after cpu_pct and mem_used.
VALUES = "mem_limit net_rx net_tx blk_read blk_write restarts health load1 load5 load15 disk_used disk_total"
SAMPLES = f"series_id ts cpu_pct mem_used {VALUES}"
ROLLUP = f"series_id ts n cpu_pct cpu_pct_max mem_used mem_used_max {VALUES}"


def upgrade() -> None:
    create_table(op, t.series, "id kind key name server app service deployment team created_at last_seen_at")
    op.create_index("series_app", "series", ["app"])
    op.create_index("series_name", "series", ["name"])
    op.create_index("series_last_seen", "series", ["last_seen_at"])
    for table, columns in ((t.samples, SAMPLES), (t.rollup_1m, ROLLUP), (t.rollup_1h, ROLLUP)):
        create_table(op, table, columns)
        # Rows arrive in time order: a BRIN index finds the old ones for deletion at almost no cost.
        op.create_index(f"{table.name}_ts_brin", table.name, ["ts"], postgresql_using="brin")
    create_table(op, t.rollup_state, "resolution done_until")
    create_table(op, t.rules, "id team_id spec created_at updated_at")
    create_table(
        op,
        t.alert_states,
        "rule_id instance status since raised_at below_since value peak alert_id updated_at",
    )
    create_table(
        op,
        t.alerts,
        "id rule_id team_id instance target_kind metric threshold value peak labels since raised_at resolved_at",
    )
    op.create_index("alerts_team_raised", "alerts", ["team_id", "raised_at"])


def downgrade() -> None:
    drop_tables(op, t.alerts, t.alert_states, t.rules, t.rollup_state, t.rollup_1h, t.rollup_1m, t.samples, t.series)
