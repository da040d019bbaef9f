"""proxy-sync: the path prefix of a route, and host claims under a path (``example.com/api``)."""

from berth_common.db.revision import Step, columns, sql, steps
from berth_proxy_sync.adapters import tables as t

revision = "proxy_0008"
down_revision = "proxy_0007"
upgrade, downgrade = steps(
    columns(t.routes, "path_prefix"),
    sql(
        "ALTER TABLE route_hosts ALTER COLUMN host TYPE varchar(460)",
        "ALTER TABLE route_hosts ALTER COLUMN host TYPE varchar(253)",
    ),
    # taken back first: the claims under a path (longer than a host name may be) go before the column narrows
    Step(lambda op: None, lambda op: op.execute("DELETE FROM route_hosts WHERE host LIKE '%/%'")),
)
