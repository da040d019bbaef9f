"""metrics: the server directory (``berth_common.fleet``) and the server each series was read on."""

from berth_common.db.revision import columns, index, steps, table
from berth_common.fleet import SERVER_COLUMNS
from berth_metrics.adapters import tables as t

revision = "metrics_0005"
down_revision = "metrics_0004"
upgrade, downgrade = steps(
    table(t.servers, SERVER_COLUMNS),
    columns(t.series, "server_id"),
    index("series_server_id", t.series, "server_id"),
)
