"""api: a deployment whose image retention removed records when (``deployments.images_pruned_at``)."""

from berth_api.adapters import tables as t
from berth_common.db.revision import columns, steps

revision = "api_0031"
down_revision = "api_0030"
upgrade, downgrade = steps(columns(t.deployments, "images_pruned_at"))
