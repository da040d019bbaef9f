"""Database base: one Postgres schema per service, its own role, migrations, idempotency and outbox."""

from berth_common.db.consume import consume_once, idempotent
from berth_common.db.engine import make_engine, make_sessionmaker
from berth_common.db.migrate import run_migrations
from berth_common.db.unit import Transactions, Unit

__all__ = ["Transactions", "Unit", "consume_once", "idempotent", "make_engine", "make_sessionmaker", "run_migrations"]
