"""api: the ports applications publish on the servers, one application per (server, port, protocol)."""

from berth_api.adapters import published_ports as t
from berth_common.db.revision import steps, table

revision = "api_0032"
down_revision = "api_0031"
upgrade, downgrade = steps(table(t.published_ports, "server_id port protocol application_id service"))
