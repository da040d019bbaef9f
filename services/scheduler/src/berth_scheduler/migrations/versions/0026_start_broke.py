"""scheduler: a container whose start call broke with its engine (``containers.start_broke``), whose removal
ends what may still run of it first (``domain/lost_tasks.py``)."""

from berth_common.db.revision import columns, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0026"
down_revision = "scheduler_0025"

upgrade, downgrade = steps(columns(t.containers, "start_broke"))
