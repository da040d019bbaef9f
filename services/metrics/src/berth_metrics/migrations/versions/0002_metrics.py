"""metrics: series, raw samples and rollups, rollup progress, threshold rules, alert states and history."""

import sqlalchemy as sa

from berth_common.db.revision import Step, index, steps, table
from berth_metrics.adapters import tables as t

revision = "metrics_0002"
down_revision = "metrics_0001"

# The value columns of samples and rollups at this revision; a rollup also has ``n`` and a ``*_max`` column
# after cpu_pct and mem_used.
VALUES = "mem_limit net_rx net_tx blk_read blk_write restarts health load1 load5 load15 disk_used disk_total"
SAMPLES = f"series_id ts cpu_pct mem_used {VALUES}"
ROLLUP = f"series_id ts n cpu_pct cpu_pct_max mem_used mem_used_max {VALUES}"
ALERTS = "id rule_id team_id instance target_kind metric threshold value peak labels since raised_at resolved_at"


def in_time_order(definition: sa.Table, columns: str) -> tuple[Step, Step]:
    """A table whose rows arrive in time order: a BRIN index finds the old ones for deletion at almost no cost."""
    return table(definition, columns), index(f"{definition.name}_ts_brin", definition, "ts", postgresql_using="brin")


upgrade, downgrade = steps(
    table(t.series, "id kind key name server app service deployment team created_at last_seen_at"),
    index("series_app", t.series, "app"),
    index("series_name", t.series, "name"),
    index("series_last_seen", t.series, "last_seen_at"),
    *in_time_order(t.samples, SAMPLES),
    *in_time_order(t.rollup_1m, ROLLUP),
    *in_time_order(t.rollup_1h, ROLLUP),
    table(t.rollup_state, "resolution done_until"),
    table(t.rules, "id team_id spec created_at updated_at"),
    table(t.alert_states, "rule_id instance status since raised_at below_since value peak alert_id updated_at"),
    table(t.alerts, ALERTS),
    index("alerts_team_raised", t.alerts, "team_id raised_at"),
)
