"""proxy-sync: the request buffering of a route (the largest body Traefik reads whole before forwarding)."""

from berth_common.db.revision import columns, steps
from berth_proxy_sync.adapters import tables as t

revision = "proxy_0007"
down_revision = "proxy_0006"
upgrade, downgrade = steps(columns(t.routes, "buffer_max_body_mb"))
