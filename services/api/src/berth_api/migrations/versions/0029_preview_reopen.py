"""api: a preview reopened while its destroy runs is made again once destroyed (``previews.reopen``)."""

from berth_api.adapters import preview_tables as t
from berth_common.db.revision import columns, steps

revision = "api_0029"
down_revision = "api_0028"
upgrade, downgrade = steps(columns(t.previews, "reopen"))
