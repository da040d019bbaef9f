"""proxy-sync: the desired routes (the truth the Traefik files are derived from) and host ownership.

Revision ID: proxy_0002
Revises: proxy_0001
"""

from alembic import op

from berth_common.db.revision import create_table, drop_tables
from berth_proxy_sync.adapters import tables as t

revision = "proxy_0002"
down_revision = "proxy_0001"


def upgrade() -> None:
    create_table(op, t.routes, "route_id hosts upstreams entry_point generation removed live_ms updated_at")
    create_table(op, t.route_hosts, "host route_id")
    op.create_index("route_hosts_route", "route_hosts", ["route_id"])


def downgrade() -> None:
    drop_tables(op, t.route_hosts, t.routes)
