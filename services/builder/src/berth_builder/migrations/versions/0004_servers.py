"""builder: the server directory (``berth_common.fleet``, kept from ``evt.server.changed``), and which server
built each build and the reference it was pushed as."""

from berth_builder.adapters import tables as t
from berth_common.db.revision import columns, steps, table
from berth_common.fleet import SERVER_COLUMNS

revision = "builder_0004"
down_revision = "builder_0003"
upgrade, downgrade = steps(table(t.servers, SERVER_COLUMNS), columns(t.builds, "server_id pushed_ref"))
