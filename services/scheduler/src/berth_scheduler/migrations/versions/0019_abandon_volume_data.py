"""scheduler: a deployment whose volumes leaving a server start empty where they go (no copy)."""

from berth_common.db.revision import columns, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0019"
down_revision = "scheduler_0018"

upgrade, downgrade = steps(columns(t.deployments, "abandon_volume_data"))
