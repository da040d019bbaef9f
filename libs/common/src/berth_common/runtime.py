"""The lifecycle every service shares: connect, migrate, wire handlers, serve health, stop gracefully.

A service describes itself with a :class:`ServiceSpec`; :func:`serve` runs it until ``stop`` is set.
Several specs can be served in one process (the all-in-one mode): each keeps its own NATS connection,
database engine and health port, and they still talk only over NATS.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from prometheus_client import generate_latest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from berth_common import sealing
from berth_common.bus import Bus
from berth_common.bus.streams import StreamReplicasError, default_streams
from berth_common.catalogue import HealthReply
from berth_common.db import make_engine, make_sessionmaker, run_migrations
from berth_common.db.engine import db_not_available
from berth_common.db.migrate_process import run_migrations_isolated, schema_at_head
from berth_common.db.unit import OutboxRelay
from berth_common.httpd import HealthServer
from berth_common.logging import configure_logging, get_logger
from berth_common.scrape import platform_exposition
from berth_common.settings import BaseServiceSettings
from berth_common.tracing import configure_tracing

log = get_logger(__name__)


@dataclass
class Context:
    """What ``wire`` receives: the connected parts of a running service."""

    settings: BaseServiceSettings
    bus: Bus
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    extra: dict[str, Any] = field(default_factory=dict)
    # Run when the service stops, before its consumers and connection drain: stop background work that
    # publishes (e.g. rollout tasks). Then the bus closes, then ``cleanups`` run (close clients, files).
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def ready(self) -> dict[str, bool]:
        db_ok = True
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2)
        except Exception:
            db_ok = False
        return {"bus": self.bus.connected and self.bus.consumers_running, "db": db_ok}


@dataclass
class ServiceSpec:
    name: str
    settings: BaseServiceSettings
    versions_dir: Path
    wire: Callable[[Context], Awaitable[None]]
    # A service with its own HTTP app (the api) serves health itself and sets this to False.
    health_server: bool = True
    run_http: Callable[[Context, asyncio.Event], Coroutine[Any, Any, None]] | None = None


async def _connect_bus(settings: BaseServiceSettings, stop: asyncio.Event) -> Bus:
    bus = Bus(
        settings.service_name,
        settings.nats_url,
        max_deliver=settings.max_deliver,
        ack_wait_s=settings.ack_wait_s,
        fetch_wait_s=settings.fetch_wait_s,
        backoff_s=settings.nak_backoff_s,
        rpc_timeout_s=settings.rpc_timeout_s,
        streams=default_streams(settings.event_retention_days, settings.log_retention_hours, settings.nats_replicas),
        user=settings.nats_user or None,
        password=settings.nats_password.get_secret_value() or None,
    )
    delay = 0.2
    while True:
        try:
            await bus.connect()
            return bus
        except Exception as exc:
            if stop.is_set():
                raise
            if isinstance(exc, StreamReplicasError):  # e.g. a cluster whose other nodes are not up yet
                log.error("streams cannot have their replicas yet", error=str(exc), retry_in=delay)
            else:
                log.warning("bus not reachable yet", url=settings.nats_url, error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _migrate(settings: BaseServiceSettings, engine: AsyncEngine, versions_dir: Path, stop: asyncio.Event) -> None:
    schema = settings.schema_name
    delay = 0.2
    while True:
        try:
            # A schema at the head of its scripts (a restart) needs neither alembic nor its lock.
            if await schema_at_head(engine, schema, versions_dir):
                return
            if settings.migrate_in_subprocess:
                await run_migrations_isolated(settings.database_url.get_secret_value(), schema, versions_dir)
            else:
                await run_migrations(engine, schema, versions_dir)
            return
        except (OSError, ConnectionError, DBAPIError, asyncpg.PostgresError) as exc:
            # Postgres still starting, not reachable, or the role not provisioned yet: keep trying (the
            # service stays not ready, and the error is in the log). A failing migration is raised.
            if stop.is_set() or not db_not_available(exc):
                raise
            log.warning("database not reachable yet", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def configure_sealing(settings: BaseServiceSettings) -> None:
    """Set the process-wide key that seals secret values on the bus, from ``BERTH_SECRET_KEY``.

    Previous secret keys (kept after a rotation only to open values sealed with them) come from the
    settings' ``previous_secret_keys`` if they define it, else from ``BERTH_PREVIOUS_SECRET_KEYS``
    (comma-separated).
    """
    listed = getattr(settings, "previous_secret_keys", None)
    if listed is None:
        listed = os.environ.get("BERTH_PREVIOUS_SECRET_KEYS", "").split(",")
    previous = [k.get_secret_value() if isinstance(k, SecretStr) else str(k).strip() for k in listed]
    # keep_open: services served in one process (all-in-one, tests) seal with the last one's key, and
    # what an earlier one sealed still opens.
    sealing.configure(settings.secret_key.get_secret_value(), [k for k in previous if k], keep_open=True)


async def serve(spec: ServiceSpec, stop: asyncio.Event) -> None:
    """Run one service until ``stop`` is set, then shut it down gracefully.

    A failure while starting (wiring, binding the HTTP port) or of the HTTP server while running stops the
    service and is raised, after everything already opened has been closed.
    """
    settings = spec.settings
    structlog.contextvars.bind_contextvars(service=spec.name)
    configure_sealing(settings)
    engine = make_engine(
        settings.database_url.get_secret_value(),
        settings.schema_name,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    bus: Bus | None = None
    ctx: Context | None = None
    relay: OutboxRelay | None = None
    server: HealthServer | None = None
    http_task: asyncio.Task[None] | None = None
    try:
        await _migrate(settings, engine, spec.versions_dir, stop)
        bus = await _connect_bus(settings, stop)
        ctx = Context(settings=settings, bus=bus, engine=engine, sessionmaker=make_sessionmaker(engine))
        context = ctx

        async def health(_: dict[str, Any]) -> HealthReply:
            components = await context.ready()
            return HealthReply(service=spec.name, ready=all(components.values()), components=components)

        await bus.serve("health", health)
        await spec.wire(ctx)
        relay = OutboxRelay(bus, ctx.sessionmaker)
        relay.start()
        if spec.health_server:
            token = settings.metrics_token.get_secret_value()
            server = HealthServer(
                settings.http_host, settings.http_port, ctx.ready, platform_exposition(token, generate_latest)
            )
            port = await server.start()
            log.info("service ready", http=f"http://{settings.http_host}:{port}")
        if spec.run_http is not None:
            http_task = asyncio.create_task(spec.run_http(ctx, stop), name=f"http:{spec.name}")
        stop_wait = asyncio.create_task(stop.wait())
        waiting: set[asyncio.Task[Any]] = {stop_wait, *([http_task] if http_task else [])}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if http_task is not None and http_task.done() and not stop.is_set():
            stop.set()
            exc = http_task.exception()
            raise RuntimeError(f"{spec.name}: HTTP server ended unexpectedly") from exc
        log.info("shutting down")
    finally:
        await _each_newest_first(ctx.on_stop if ctx else [], "stopping background work failed")
        if http_task is not None and not http_task.done():
            try:
                await asyncio.wait_for(http_task, 30)
            except Exception as exc:
                log.warning("http server did not stop cleanly", error=str(exc))
        if server is not None:
            await server.stop()
        if relay is not None:
            await relay.stop()
        if bus is not None:
            await bus.close()
        await _each_newest_first(ctx.cleanups if ctx else [], "cleanup failed")
        await engine.dispose()
        log.info("stopped")


async def _each_newest_first(callbacks: list[Callable[[], Awaitable[None]]], failure: str) -> None:
    """Await every callback, the last added first; one that fails is logged as ``failure`` and the rest run."""
    for callback in reversed(callbacks):
        try:
            await callback()
        except Exception as exc:
            log.warning(failure, error=str(exc))


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def run(*specs: ServiceSpec) -> None:
    """Process entry point: one spec (split mode) or all six (all-in-one)."""
    first = specs[0].settings
    name = specs[0].name if len(specs) == 1 else "all-in-one"
    configure_logging(name, json=first.json_logs, level=first.log_level)
    configure_tracing(name, first.otlp_endpoint)

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        tasks = [asyncio.create_task(serve(s, stop), name=s.name) for s in specs]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise t.exception()  # type: ignore[misc]

    asyncio.run(main())
