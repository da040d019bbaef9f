"""scheduler: the digest of a deployment's prebuilt image (pulled or found on the server)."""

from berth_common.db.revision import columns, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0005"
down_revision = "scheduler_0004"
upgrade, downgrade = steps(columns(t.deployments, "image_digest"))
