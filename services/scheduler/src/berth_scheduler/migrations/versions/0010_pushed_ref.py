"""scheduler: the reference a built image was pushed to (the team's push registry), pulled on every server."""

from berth_common.db.revision import columns, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0010"
down_revision = "scheduler_0009"
upgrade, downgrade = steps(columns(t.deployments, "pushed_ref"))
