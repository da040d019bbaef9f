"""api: a failed or cancelled deployment keeps the state it was in when it ended (``deployments.ended_in``)."""

from berth_api.adapters import tables as t
from berth_common.db.revision import columns, steps

revision = "api_0030"
down_revision = "api_0029"
upgrade, downgrade = steps(columns(t.deployments, "ended_in"))
