"""metrics: the autoscaling policies of web services (kept from ``evt.application.autoscale_changed``)."""

from berth_common.db.revision import steps, table
from berth_metrics.adapters import tables as t

revision = "metrics_0004"
down_revision = "metrics_0003"
COLUMNS = "application_id service team_id policy revision last_change_at"
upgrade, downgrade = steps(table(t.autoscale_policies, COLUMNS))
