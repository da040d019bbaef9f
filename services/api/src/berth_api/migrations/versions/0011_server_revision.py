"""api: the revision of each server's announcements (``evt.server.changed``), so other services keep the latest."""

from berth_api.adapters import tables as t
from berth_common.db.revision import columns, steps

revision = "api_0011"
down_revision = "api_0010"
upgrade, downgrade = steps(columns(t.servers, "revision"))
