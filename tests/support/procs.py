"""Start real infrastructure processes for tests (nats-server, Postgres) from the project's launchers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from berth_cli import components


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0, proc: Proc | None = None) -> None:
    """Wait until ``port`` accepts connections; with ``proc``, it must be that process listening (one that
    exited lost the port to another process: ``PortTakenError``, so the caller starts it on another)."""

    def exited() -> bool:
        return proc is not None and proc.proc is not None and proc.proc.poll() is not None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited():
            raise PortTakenError(f"{proc.launch.name if proc else ''} exited before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        time.sleep(0.05)  # a process that could not bind exits at once: make sure ours is still there
        if exited():
            raise PortTakenError(f"{proc.launch.name if proc else ''} exited; {host}:{port} is another process's")
        return
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class PortTakenError(RuntimeError):
    pass


def start_on_a_free_port(launch: Callable[[int], None], port: int, attempts: int = 3) -> int:
    """``launch(port)``; when another process took the port meanwhile (parallel test workers: ours exited,
    ``PortTakenError``), again on a new one. The port it runs on."""
    for _ in range(attempts - 1):
        try:
            launch(port)
            return port
        except PortTakenError:
            port = components.free_port()
    launch(port)
    return port


def wait_healthz(monitor_port: int, proc: Proc, timeout: float = 20.0) -> None:
    """Wait until nats-server's ``/healthz`` answers 200 (the server, JetStream included, is ready). Blocking
    (the platform's probe is async, and tests restart servers from inside their event loop)."""
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{monitor_port}/healthz"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc is not None and proc.proc.poll() is not None:
            raise PortTakenError(f"nats-server exited before it was ready (monitor port {monitor_port})")
        try:
            with opener.open(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise TimeoutError(f"nats-server not ready ({url}) after {timeout}s")


@dataclass
class Proc:
    launch: components.Launch
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Proc:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.launch.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.launch.env, **self.env},
            start_new_session=True,
            cwd=self.launch.cwd,
            **self.launch.popen_kwargs(),  # type: ignore[arg-type]
        )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class NatsServer:
    data_dir: Path
    port: int = field(default_factory=components.free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> NatsServer:
        """Start on ``port``; when another process took it meanwhile (parallel test workers), on a new one.

        Ready means ``/healthz`` answers 200 (JetStream included), as the platform's probe has it. It answers
        200 only once the server listens for clients, and a server that could not bind its port exits (then
        ``wait_healthz`` raises ``PortTakenError``): no separate wait for the port (it cost 50-100 ms a start)."""

        def launch(port: int) -> None:
            monitor = components.free_port()
            self.proc = Proc(
                components.nats_launch(self.data_dir, port, monitor_port=monitor), self.data_dir / "nats.log"
            )
            wait_healthz(monitor, self.proc.start())

        self.port = start_on_a_free_port(launch, self.port, attempts)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def kill(self) -> None:
        """End the server at once (SIGKILL), for a fixture whose store is thrown away after it: a graceful stop
        shuts JetStream down stream by stream, about 10 ms each (a third of a second once services declared
        theirs), and a test that needs the store again restarts the server with ``stop``."""
        if self.proc:
            self.proc.kill()


# The test server's data is thrown away at the end of the session and never has to outlive a crash of the
# machine: no flush to the disk at each commit, database copy and checkpoint (about 5 ms a commit on a shared
# disk, and seconds at its stop). A killed Postgres loses nothing by it (its writes are in the OS's cache), and
# commits stay synchronous (``synchronous_commit`` on). `berth up` keeps the production settings (fsync on).
THROWAWAY_PG_SETTINGS: dict[str, str] = {"fsync": "off"}


@dataclass
class Postgres:
    data_dir: Path
    password: str = "test-superuser-pw"
    port: int = field(default_factory=components.free_port)
    proc: Proc | None = None
    settings: dict[str, str] = field(default_factory=lambda: dict(THROWAWAY_PG_SETTINGS))

    @property
    def admin_url(self) -> str:
        return components.pg_admin_url(self.port, self.password)

    def start(self, attempts: int = 3) -> Postgres:
        def launch(port: int) -> None:
            self.proc = Proc(
                components.pg_launch(self.data_dir / "pg", port, self.password, settings=self.settings),
                self.data_dir / "postgres.log",
            )
            wait_port(port, proc=self.proc.start(), timeout=60)

        self.port = start_on_a_free_port(launch, self.port, attempts)
        asyncio.run(self._wait_accepting())
        return self

    async def _wait_accepting(self, timeout: float = 30.0) -> None:
        """The port opens before Postgres accepts sessions ("the database system is starting up")."""
        import asyncpg

        dsn = self.admin_url.replace("postgresql+asyncpg://", "postgresql://")
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=2)
                await conn.close()
                return
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop(signal.SIGINT)


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """A fresh database on the test server (a copy of ``template`` if given); returns its admin URL."""
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


# What a provisioning left on a test server, per (server, secret key, services): its roles (password verifier,
# settings) and, in the database it provisioned, the schemas' owners and privileges (``provisioned``).
_PROVISIONED: dict[tuple[str, str, tuple[str, ...]], tuple[object, ...]] = {}


async def _provisioning_state(conn: object, services: tuple[str, ...]) -> tuple[object, ...]:
    from berth_common.db.provision import role_for, schema_for

    roles = sorted(role_for(s) for s in services)
    schemas = sorted({"public", *(schema_for(s) for s in services)})
    fetch = conn.fetch  # type: ignore[attr-defined]
    return (
        tuple(
            tuple(r)
            for r in await fetch(
                "SELECT a.rolname, a.rolpassword, a.rolcanlogin, r.rolconfig FROM pg_authid a"
                " JOIN pg_roles r ON r.oid = a.oid WHERE a.rolname = ANY($1::text[]) ORDER BY a.rolname",
                roles,
            )
        ),
        tuple(
            tuple(r)
            for r in await fetch(
                "SELECT nspname, nspowner::regrole::text, nspacl::text[] FROM pg_namespace"
                " WHERE nspname = ANY($1::text[]) ORDER BY nspname",
                schemas,
            )
        ),
    )


async def provisioned(
    database: str, secret_key: str = "test-secret", services: tuple[str, ...] | None = None
) -> dict[str, str]:
    """``provision(database, secret_key, services)`` for a database copied from a provisioned template: the
    roles' URLs, provisioning again only when the state it leaves is not there (about 0.1-0.3 s a test).

    Roles belong to the whole server, and some tests rotate their passwords (another secret key): the roles'
    password verifiers and settings, and this database's schemas (owners, privileges, ``public`` included),
    must be what the last provisioning with this key left, else this provisions as ``provision`` does."""
    import asyncpg

    from berth_common.db.provision import SERVICES, provision, service_url

    services = services or SERVICES
    key = (database.rsplit("/", 1)[0], secret_key, services)
    conn = await asyncpg.connect(database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        if _PROVISIONED.get(key) == await _provisioning_state(conn, services):
            return {s: service_url(database, secret_key, s) for s in services}
        urls = await provision(database, secret_key, services)
        _PROVISIONED[key] = await _provisioning_state(conn, services)
        return urls
    finally:
        await conn.close()


def run_sync(coro: object) -> object:
    return asyncio.get_event_loop().run_until_complete(coro)  # type: ignore[arg-type]


async def migrated_template(admin_url: str, services: tuple[str, ...], secret_key: str = "test-secret") -> str:
    """A new database where ``services`` are provisioned (roles, schemas) and migrated to head; its name.

    Tests copy it (``create_database(..., template=name)``) instead of running every revision again in each
    test's services at their start (at start, a service finds its schema at head and migrates nothing). The
    migrations themselves are tested from empty databases (``empty_database``)."""
    import uuid

    from berth_cli.provisioning import versions_dir
    from berth_common.db import make_engine
    from berth_common.db.migrate import run_migrations
    from berth_common.db.provision import provision, schema_for

    name = f"tmpl_{uuid.uuid4().hex[:12]}"
    urls = await provision(await create_database(admin_url, name), secret_key, services)
    for service in services:
        versions = versions_dir(service)  # found without importing the service (about 1 s of CPU for the api)
        if versions is None:
            raise RuntimeError(f"the migrations of {service} are not installed")
        engine = make_engine(urls[service], schema_for(service))
        try:
            await run_migrations(engine, schema_for(service), versions)
        finally:
            await engine.dispose()
    return name
