"""scheduler: the runs of cron jobs (their job, and the stop asked when the next run replaces one)."""

from berth_common.db.revision import columns, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0017"
down_revision = "scheduler_0016"
upgrade, downgrade = steps(columns(t.runs, "job_id job_name stop_reason"))
