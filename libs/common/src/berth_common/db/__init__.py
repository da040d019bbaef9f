"""Database base: one Postgres schema per service, its own role, migrations, idempotency and outbox.

The names below are loaded on first use: importing one submodule (``berth_common.db.engine`` in the child
process that runs a service's migrations, ``berth_common.db.provision``) does not load the bus and the
message catalogue that ``consume`` and ``unit`` need, about half a second of a process start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from berth_common.db.consume import consume_once, idempotent
    from berth_common.db.engine import make_engine, make_sessionmaker
    from berth_common.db.migrate import run_migrations
    from berth_common.db.unit import Transactions, Unit

__all__ = ["Transactions", "Unit", "consume_once", "idempotent", "make_engine", "make_sessionmaker", "run_migrations"]

_HOME = {
    "consume_once": "consume",
    "idempotent": "consume",
    "make_engine": "engine",
    "make_sessionmaker": "engine",
    "run_migrations": "migrate",
    "Transactions": "unit",
    "Unit": "unit",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
