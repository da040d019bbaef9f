"""Services as real, separate processes: the ``berth-<service>`` console scripts with their ``BERTH_``
environment.

``ServiceProcess`` (``ApiProcess`` for the api) starts one against a nats-server and a provisioned
Postgres role, waits until ``/readyz`` answers 200 (failing fast with the log's tail if the process
dies) and stops it with SIGTERM; ``ApiProcess.admin_token`` reads the bootstrap admin's token. ``Infra`` starts nats-server and Postgres from the project's launchers for a
benchmark (the tests have fixtures for those). Used by ``bench_api.py`` and ``tests/security``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.support import LOOPBACK_ALLOWED
from berth_cli import components
from berth_common.binaries import console_script

READY_TIMEOUT_S = 90.0


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s") from None
            time.sleep(0.05)


@dataclass
class ServiceProcess:
    """A service's console script (``berth-<service>``) in its own process, HTTP on a loopback port."""

    service: str  # api, notifier, metrics, ...
    nats_url: str
    database_url: str  # the service's provisioned role, not the admin
    data_dir: Path
    port: int = field(default_factory=components.free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    _log_start: int = 0  # the log's size when the process was spawned: what it wrote since is its own

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.service}.log"

    def environment(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        return {
            **keep,
            **LOOPBACK_ALLOWED,
            "BERTH_ENV": "test",
            "BERTH_NATS_URL": self.nats_url,
            "BERTH_DATABASE_URL": self.database_url,
            "BERTH_DATA_DIR": str(self.data_dir),
            f"BERTH_{self.service.upper().replace('-', '_')}_HTTP_PORT": str(self.port),
            "BERTH_LOG_FORMAT": "json",
            **self.extra_env,
        }

    def start(self, timeout: float = READY_TIMEOUT_S) -> ServiceProcess:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self) -> ServiceProcess:
        """Start the process without waiting (``wait_ready`` later: several services start in parallel)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            self.proc = subprocess.Popen(
                [console_script(f"berth-{self.service}")],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.data_dir,
                start_new_session=True,
            )
        return self

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _lost_its_port(self) -> bool:
        """Whether the process (exited) could not bind its port: another process took it after ``free_port``
        chose it (parallel test workers)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                written = log.read().decode(errors="replace")
        except OSError:
            return False
        return f"('127.0.0.1', {self.port}): address already in use" in written

    def wait_ready(self, timeout: float, attempts: int = 3) -> None:
        """Wait until ``/readyz`` answers 200; a process that exited because its port was taken meanwhile is
        started again on another (``attempts`` in all)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    if attempts > 1 and self._lost_its_port():
                        attempts -= 1
                        self.port = components.free_port()
                        self.spawn()
                        continue
                    raise RuntimeError(f"berth-{self.service} exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"berth-{self.service} not ready after {timeout}s:\n{self.log_tail()}")
                time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 40.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class ApiProcess(ServiceProcess):
    """``berth-api``: ``ApiProcess("api", nats_url, database_url, data_dir)``."""

    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()


@dataclass
class Infra:
    """nats-server and Postgres from the project's launchers, in ``root``; the api role provisioned."""

    root: Path
    pg_password: str = "bench-superuser-pw"
    secret_key: str = "bench-secret-key"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    nats_url: str = ""
    admin_url: str = ""

    def _spawn(self, launch: components.Launch, log_name: str) -> None:
        with (self.root / log_name).open("ab") as log:
            proc = subprocess.Popen(  # type: ignore[call-overload]
                launch.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **launch.env},
                start_new_session=True,
                **launch.popen_kwargs(),
            )
        self.procs.append(proc)

    def start(self) -> Infra:
        nats_port, pg_port = components.free_port(), components.free_port()
        (self.root / "nats").mkdir(parents=True, exist_ok=True)
        self._spawn(components.nats_launch(self.root / "nats", nats_port), "nats.log")
        self._spawn(components.pg_launch(self.root / "pg", pg_port, self.pg_password), "postgres.log")
        wait_port(nats_port)
        wait_port(pg_port)
        self.nats_url = f"nats://127.0.0.1:{nats_port}"
        self.admin_url = components.pg_admin_url(pg_port, self.pg_password)
        return self

    async def api_database(self) -> str:
        """The api role's URL on the server's default database, once Postgres accepts sessions."""
        import asyncpg

        from berth_common.db.provision import provision

        dsn = self.admin_url.replace("postgresql+asyncpg://", "postgresql://")
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=2)
                await conn.close()
                break
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        return (await provision(self.admin_url, self.secret_key, ("api",)))["api"]

    @property
    def postgres_pid(self) -> int:
        return self.procs[1].pid

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # Postgres: fast shutdown; nats-server: exits
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()


@contextlib.asynccontextmanager
async def running_api(
    name: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[tuple[Path, Infra, ApiProcess]]:
    """nats-server, Postgres and one ``berth-api`` process in a temporary directory (``berth-bench-<name>-``),
    all stopped and removed afterwards: the rig of the benchmarks that measure the api alone."""
    root = Path(tempfile.mkdtemp(prefix=f"berth-bench-{name}-"))
    root.chmod(0o755)  # Postgres may run as its own user below it
    infra = Infra(root)
    api: ApiProcess | None = None
    try:
        infra.start()
        database = await infra.api_database()
        env = {"BERTH_LOG_LEVEL": "WARNING", **(extra_env or {})}
        api = ApiProcess("api", infra.nats_url, database, root / "api", extra_env=env)
        api.start()
        yield root, infra, api
    finally:
        if api is not None:
            api.stop()
        infra.stop()
        shutil.rmtree(root, ignore_errors=True)
