"""scheduler: the volume data a deployment moves with its service from one server to another."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0018"
down_revision = "scheduler_0017"

upgrade, downgrade = steps(
    table(t.volume_moves, "deployment_id volume target source services state target_made attempts bytes seconds")
)
