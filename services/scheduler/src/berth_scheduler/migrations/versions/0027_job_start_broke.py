"""scheduler: a deployment whose pre-deploy job's container had a start call break with its engine
(``deployments.job_start_broke``), whose removal ends what may still run of it first (``domain/lost_tasks.py``)."""

from berth_common.db.revision import columns, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0027"
down_revision = "scheduler_0026"

upgrade, downgrade = steps(columns(t.deployments, "job_start_broke"))
