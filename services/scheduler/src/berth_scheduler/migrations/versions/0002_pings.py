"""scheduler: pings (the work-queue liveness probe)."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0002"
down_revision = "scheduler_0001"
upgrade, downgrade = steps(table(t.pings, "nonce count received_at"))
