"""proxy-sync: routes on many servers (a route is (server_id, route_id); a host is claimed per server) and the
server directory (``berth_common.fleet``) kept from ``evt.server.changed``."""

from berth_common.db.revision import Step, steps, table
from berth_common.fleet import SERVER_COLUMNS
from berth_proxy_sync.adapters import tables as t

# The keys change: the constraints of 0002 are dropped whatever the database named them.
_DROP_KEYS = """
DO $$ DECLARE c record; BEGIN
  FOR c IN SELECT conrelid::regclass AS rel, conname FROM pg_constraint
           WHERE conrelid IN ('route_hosts'::regclass, 'routes'::regclass) AND contype IN ('f', 'p')
           ORDER BY contype
  LOOP EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.rel, c.conname); END LOOP;
END $$;
"""


def _up(op):  # type: ignore[no-untyped-def]
    op.execute(_DROP_KEYS)
    op.add_column("routes", t.routes.c.server_id._copy())
    op.add_column("route_hosts", t.route_hosts.c.server_id._copy())
    op.create_primary_key("routes_pkey", "routes", ["server_id", "route_id"])
    op.create_primary_key("route_hosts_pkey", "route_hosts", ["host", "server_id"])
    op.create_foreign_key(
        "route_hosts_route_fkey",
        "route_hosts",
        "routes",
        ["server_id", "route_id"],
        ["server_id", "route_id"],
        ondelete="CASCADE",
    )


def _down(op):  # type: ignore[no-untyped-def]
    op.execute("DELETE FROM routes WHERE server_id <> 'local'")
    op.execute(_DROP_KEYS)
    op.drop_column("route_hosts", "server_id")
    op.drop_column("routes", "server_id")
    op.create_primary_key("routes_pkey", "routes", ["route_id"])
    op.create_primary_key("route_hosts_pkey", "route_hosts", ["host"])
    op.create_foreign_key(
        "route_hosts_route_id_fkey", "route_hosts", "routes", ["route_id"], ["route_id"], ondelete="CASCADE"
    )


revision = "proxy_0003"
down_revision = "proxy_0002"
upgrade, downgrade = steps(Step(_up, _down), table(t.servers, SERVER_COLUMNS))
