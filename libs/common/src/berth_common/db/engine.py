"""Async engines bound to one service schema (``search_path``)."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import Pool
from sqlalchemy.util import await_

from berth_common.db.names import SCHEMA_RE, check_schema

__all__ = ["SCHEMA_RE", "async_url", "check_schema", "db_not_available", "make_engine", "make_sessionmaker"]


def async_url(url: str) -> str:
    """Normalise a Postgres URL to the asyncpg driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


def make_engine(
    url: str, schema: str, *, pool_size: int = 1, max_overflow: int = 10, poolclass: type[Pool] | None = None
) -> AsyncEngine:
    """An engine whose sessions see only ``schema``.

    Only ``pool_size`` connections are kept open while idle (each idle connection costs Postgres a backend
    of a few MB); bursts open up to ``max_overflow`` more, closed again when returned.
    """
    check_schema(schema)
    pool_args: dict[str, Any] = (
        {"poolclass": poolclass} if poolclass is not None else {"pool_size": pool_size, "max_overflow": max_overflow}
    )
    engine = create_async_engine(
        async_url(url),
        **pool_args,
        pool_pre_ping=True,
        connect_args={"server_settings": {"search_path": schema, "application_name": f"berth-{schema}"}},
    )
    engine.sync_engine.dialect.do_ping = _ping  # type: ignore[method-assign]
    return engine


def _ping(dbapi_connection: Any) -> bool:
    """The pool's check of a connection before each use: one round trip (an empty statement).

    The asyncpg dialect's own ping wraps the statement in a transaction (BEGIN, the statement, ROLLBACK: three
    round trips) for PgBouncer's transaction mode; a unit of work is one short transaction, so that tripled
    the ping's cost on both ends. A connection whose server went away still fails the ping with the dialect's
    error, so the pool replaces it before the unit of work sees it."""
    try:
        await_(dbapi_connection._connection.fetchrow(";"))
    except Exception as error:
        dbapi_connection._handle_exception(error)  # raises it as the dialect's DBAPI error (disconnect known)
    return True


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLSTATE classes that mean "the database is not there for us yet": connection exceptions (08),
# cannot connect now / starting up (57P03), invalid authorization (28: role not provisioned yet),
# invalid catalog name (3D000: database not created yet).
_UNAVAILABLE_SQLSTATES = ("08", "57P03", "28", "3D000")


def db_not_available(exc: BaseException) -> bool:
    """True if ``exc`` means the database cannot be reached or used yet (worth waiting for), not a bug."""
    if isinstance(exc, (OSError, ConnectionError)):
        return True
    orig = getattr(exc, "orig", None)
    for err in (exc, orig, getattr(orig, "__cause__", None)):
        if isinstance(err, (OSError, ConnectionError, asyncpg.exceptions.ConnectionDoesNotExistError)):
            return True
        state = getattr(err, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_UNAVAILABLE_SQLSTATES):
            return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
