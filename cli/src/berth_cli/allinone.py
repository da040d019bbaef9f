"""The all-in-one mode: the six services in one process (``berth-allinone``), for small servers.

Each service keeps its own NATS connection, database role (``BERTH_<SCHEMA>_DATABASE_URL``) and health
port (``BERTH_<SCHEMA>_HTTP_PORT``); they still talk to each other only over NATS. Their migrations run
one at a time (``berth_common.db.migrate`` holds a process-wide lock: Alembic's proxies are global).
"""

from __future__ import annotations

import importlib

from berth_common.runtime import ServiceSpec, run

MODULES = (
    "berth_api.bootstrap",
    "berth_builder.bootstrap",
    "berth_scheduler.bootstrap",
    "berth_proxy_sync.bootstrap",
    "berth_metrics.bootstrap",
    "berth_notifier.bootstrap",
)


def specs() -> list[ServiceSpec]:
    """Every service's spec, its settings read from the environment."""
    return [importlib.import_module(m).spec() for m in MODULES]


def main() -> None:
    run(*specs())


if __name__ == "__main__":
    main()
