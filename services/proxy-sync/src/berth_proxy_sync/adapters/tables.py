"""Tables of the proxy schema (``migrations/versions/0002_routes.py`` creates them from these definitions)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

routes = sa.Table(
    "routes",
    metadata,
    sa.Column("route_id", sa.String(64), primary_key=True),
    sa.Column("hosts", sa.JSON, nullable=False),
    sa.Column("upstreams", sa.JSON, nullable=False),
    sa.Column("entry_point", sa.String(32), nullable=False, server_default="web"),
    sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
    # A removed route stays as a tombstone so that an older apply delivered late cannot revive it.
    sa.Column("removed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("live_ms", sa.Float, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

route_hosts = sa.Table(
    "route_hosts",
    metadata,
    sa.Column("host", sa.String(253), primary_key=True),
    sa.Column("route_id", sa.String(64), sa.ForeignKey("routes.route_id", ondelete="CASCADE"), nullable=False),
)
