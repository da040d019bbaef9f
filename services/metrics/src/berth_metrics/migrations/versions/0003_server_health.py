"""metrics: whether each server's Docker engine answers (outages announced once across restarts)."""

from berth_common.db.revision import steps, table
from berth_metrics.adapters import tables as t

revision = "metrics_0003"
down_revision = "metrics_0002"
COLUMNS = "server status failures successes failing_since last_seen_at outage_id team_ids error updated_at"
upgrade, downgrade = steps(table(t.server_health, COLUMNS))
