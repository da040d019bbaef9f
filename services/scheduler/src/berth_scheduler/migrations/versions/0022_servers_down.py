"""scheduler: the servers reported unreachable, which deployments do not contact until they are back."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0022"
down_revision = "scheduler_0021"

upgrade, downgrade = steps(table(t.servers_down, "server_id outage_id down_since error"))
