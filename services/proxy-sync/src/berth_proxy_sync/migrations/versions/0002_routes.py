"""proxy-sync: the desired routes (the truth the Traefik files are derived from) and host ownership."""

from berth_common.db.revision import index, steps, table
from berth_proxy_sync.adapters import tables as t

revision = "proxy_0002"
down_revision = "proxy_0001"
upgrade, downgrade = steps(
    table(t.routes, "route_id hosts upstreams entry_point generation removed live_ms updated_at"),
    table(t.route_hosts, "host route_id"),
    index("route_hosts_route", t.route_hosts, "route_id"),
)
