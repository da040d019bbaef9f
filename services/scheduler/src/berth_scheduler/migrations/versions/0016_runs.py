"""scheduler: one-off runs (``cmd.run.start``): the command, its container and its outcome."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0016"
down_revision = "scheduler_0015"
RUNS = (
    "id seq team_id application_id deployment_id service command timeout_s status server_id container exit_code "
    "reason last_lines created_at started_at finished_at pruned"
)

upgrade, downgrade = steps(table(t.runs, RUNS))
