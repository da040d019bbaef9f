"""scheduler: the builds of a deployment whose compose services build their own images (one per service)."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0014"
down_revision = "scheduler_0013"
BUILDS = "deployment_id build_id position service image_tag state image pushed_ref reason"

upgrade, downgrade = steps(table(t.deployment_builds, BUILDS))
