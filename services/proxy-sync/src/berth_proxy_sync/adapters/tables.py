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
    # The route's TLS options as JSON (an uploaded certificate's key sealed, as on the bus); NULL: HTTP only
    sa.Column("tls", sa.JSON, nullable=True),
    # The largest request body Traefik reads whole before forwarding (MiB); NULL: requests are streamed
    sa.Column("buffer_max_body_mb", sa.Integer, nullable=True),
    # The URL path prefix the route serves on its hosts; NULL: the whole hosts
    sa.Column("path_prefix", sa.String(200), nullable=True),
)

# Who serves a host: one route id, on one or several servers (one application service runs on many). A
# route with a path claims its hosts under it (``example.com/api``: ``Route.claims``).
route_hosts = sa.Table(
    "route_hosts",
    metadata,
    sa.Column("host", sa.String(460), primary_key=True),
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

# What proxy-sync knows of the certificate of each HTTPS host of a server: whether the host resolved to the
# server (checked before the ACME resolver is given it), the certificate last seen served for it, and
# which events were sent about it (each once).
certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("server_id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(253), primary_key=True),
    sa.Column("route_id", sa.String(64), nullable=False),
    sa.Column("team_id", sa.String(64), nullable=True),  # the route's owner, named in the events
    sa.Column("application_id", sa.String(64), nullable=True),
    sa.Column("source", sa.String(16), nullable=False, server_default="acme"),  # acme | custom
    sa.Column("dns_ok", sa.Boolean, nullable=True),  # NULL: not checked (no ACME for it)
    sa.Column("dns_reason", sa.Text, nullable=True),
    sa.Column("fingerprint", sa.String(95), nullable=True),  # SHA-256 of the certificate served
    sa.Column("issuer", sa.Text, nullable=True),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
    sa.Column("not_after", sa.DateTime(timezone=True), nullable=True),
    sa.Column("domains", sa.JSON, nullable=True),
    sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),  # HTTPS asked, no certificate yet
    sa.Column("failed_sent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expiring_sent", sa.String(95), nullable=True),  # the fingerprint evt.certificate.expiring named
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# The newest ``evt.certificates.changed`` taken for each application: an older one arriving late is ignored,
# and a route command built before it gets its certificates (``hosts``, ``certificates``: the refresh's, the
# keys sealed as on the wire).
certificate_refreshes = sa.Table(
    "certificate_refreshes",
    metadata,
    sa.Column("application_id", sa.String(64), primary_key=True),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("hosts", sa.JSON, nullable=True),
    sa.Column("certificates", sa.JSON, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)
