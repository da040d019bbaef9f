"""scheduler: the host ports of a replica's more routed ports (``domain/port_routes.py``)."""

from berth_common.db.revision import columns, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0020"
down_revision = "scheduler_0019"

upgrade, downgrade = steps(columns(t.containers, "more_ports"))
