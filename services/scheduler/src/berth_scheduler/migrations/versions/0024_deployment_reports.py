"""scheduler: the reports a deployment's log holds once (a volume or network keeping other options)."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0024"
down_revision = "scheduler_0023"

upgrade, downgrade = steps(table(t.deployment_reports, "deployment_id digest"))
