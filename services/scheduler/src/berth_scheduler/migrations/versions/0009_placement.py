"""scheduler: the server each container runs on; routes and their commands keyed by (server, route)."""

from berth_common.db.revision import columns, sql, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0009"
down_revision = "scheduler_0008"


def _keyed_by_server(table: str, key: str) -> str:
    return (
        f"ALTER TABLE {table} ADD COLUMN server_id VARCHAR(64) DEFAULT 'local' NOT NULL, "
        f"DROP CONSTRAINT {table}_pkey, ADD PRIMARY KEY ({key}, server_id)"
    )


def _keyed_by_route(table: str, key: str) -> str:
    return f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, DROP COLUMN server_id, ADD PRIMARY KEY ({key})"


upgrade, downgrade = steps(
    columns(t.containers, "server_id"),
    sql(_keyed_by_server("routes", "route_id"), _keyed_by_route("routes", "route_id")),
    sql(_keyed_by_server("route_ops", "route_id, generation"), _keyed_by_route("route_ops", "route_id, generation")),
)
