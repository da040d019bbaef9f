"""The all-in-one mode: the six services in one process (``berth-allinone``), for small servers.

Each service keeps its own NATS connection, database role (``BERTH_<SCHEMA>_DATABASE_URL``) and health
port (``BERTH_<SCHEMA>_HTTP_PORT``); they still talk to each other only over NATS.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from berth_common import runtime
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


def serialize_migrations() -> None:
    """Run the services' migrations one at a time in this process.

    Alembic keeps its ``context``/``op`` proxies in module globals, so two upgrades interleaving on one
    event loop break each other (``KeyError: 'script'``); the advisory lock in ``run_migrations`` only
    serialises the same schema. Until ``berth_common.db.migrate`` holds a process-wide lock itself, the
    all-in-one process wraps the runtime's reference to it.
    """
    original = runtime.run_migrations  # type: ignore[attr-defined]
    lock = asyncio.Lock()

    async def locked(engine: AsyncEngine, schema: str, versions_dir: Path, revision: str = "head") -> None:
        async with lock:
            await original(engine, schema, versions_dir, revision)

    runtime.run_migrations = locked  # type: ignore[attr-defined]


def main() -> None:
    serialize_migrations()
    run(*specs())


if __name__ == "__main__":
    main()
