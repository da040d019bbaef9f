"""scheduler: the server directory (``berth_common.fleet``), kept from ``evt.server.changed``."""

from berth_common.db.revision import steps, table
from berth_common.fleet import SERVER_COLUMNS
from berth_scheduler.adapters import tables as t

revision = "scheduler_0006"
down_revision = "scheduler_0005"
upgrade, downgrade = steps(table(t.servers, SERVER_COLUMNS))
