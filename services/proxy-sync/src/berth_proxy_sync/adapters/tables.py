"""Tables of the proxy schema (``migrations/versions/`` creates them from these definitions)."""

from __future__ import annotations

import sqlalchemy as sa

from berth_common.fleet import servers_table

metadata = sa.MetaData()

# A route is (server_id, route_id): the route id names one route on one server's Traefik (``local``: the
# control plane's own).
routes = sa.Table(
    "routes",
    metadata,
    sa.Column("server_id", sa.String(64), primary_key=True, server_default="local"),
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

# Who serves a host: one route id, on one or several servers (one application service runs on many).
route_hosts = sa.Table(
    "route_hosts",
    metadata,
    sa.Column("host", sa.String(253), primary_key=True),
    sa.Column("server_id", sa.String(64), primary_key=True, server_default="local"),
    sa.Column("route_id", sa.String(64), nullable=False),
    sa.ForeignKeyConstraint(
        ["server_id", "route_id"],
        ["routes.server_id", "routes.route_id"],
        name="route_hosts_route_fkey",
        ondelete="CASCADE",
    ),
)

# The servers whose Traefik proxy-sync writes, as the api announces them (``evt.server.changed``).
servers = servers_table(metadata)
