"""scheduler: the api's number of a deployment (``deployments.number``): its application's request order."""

from berth_common.db.revision import columns, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0025"
down_revision = "scheduler_0024"

upgrade, downgrade = steps(columns(t.deployments, "number"))
