"""proxy-sync: the TLS options of each route and the certificate state of each HTTPS host."""

from berth_common.db.revision import columns, steps, table
from berth_proxy_sync.adapters import tables as t

revision = "proxy_0004"
down_revision = "proxy_0003"
upgrade, downgrade = steps(
    columns(t.routes, "tls"),
    table(
        t.certificates,
        "server_id host route_id team_id application_id source dns_ok dns_reason fingerprint issuer not_before not_after domains "
        "waiting_since failed_sent expiring_sent updated_at",
    ),
)
