"""The local platform's supervisor: one process that runs and restarts every component.

Start order: Postgres, then Traefik while the database roles are provisioned (and the services' schemas
migrated, in the same one-shot child); nats-server meanwhile (its configuration written while initdb runs);
then the services (six processes, or one with ``--all-in-one``). A child that exits is restarted with exponential backoff; every start and exit is logged
to ``<data>/logs/supervisor.log``, each child's output goes to ``<data>/logs/<name>.log``. On SIGTERM or
SIGINT the control plane stops in reverse order; Traefik, the data plane, runs detached and keeps serving the
applications (``berth_cli.dataplane``: the next supervisor adopts it). The state (children, pids, ports,
URLs; never a secret) is kept in ``<data>/supervisor.json`` for ``berth status`` and ``berth down``.

Run as ``python -m berth_cli.supervise --data-dir DIR [--all-in-one]`` (``berth up`` does that).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from berth_cli import components, dataplane, nats_auth, oneshot
from berth_cli.backoff import RestartPolicy
from berth_cli.childproc import Child, acquire_pidfile, configure_logging, die_with_parent
from berth_cli.components import PG_MAX_CONNECTIONS, PG_SHARED_BUFFERS, PG_SMALL
from berth_cli.datadir import ensure_secret, rotate, write_json
from berth_cli.layout import (
    ALL_IN_ONE,
    DATABASE,
    PROVISION_MIGRATES,
    SUPERVISED_BY,
    ChildSpec,
    Paths,
    Probe,
    check_host,
    infra_probes,
    platform_env,
    proxy_tls_port,
    resolve_ports,
    scrub_env,
    service_children,
    service_probes,
)
from berth_cli.probes import check_all


class Supervisor:
    def __init__(
        self,
        data_dir: Path,
        all_in_one: bool = False,
        env: Mapping[str, str] | None = None,
        policy: RestartPolicy | None = None,
        echo: bool = False,
        on_ready: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.paths = Paths(data_dir.resolve())
        self.all_in_one = all_in_one
        self.ports = resolve_ports(self.env)
        self.proxy_host = check_host("BERTH_PROXY_HOST", self.env.get("BERTH_PROXY_HOST", "127.0.0.1"))
        self.external_db = self.env.get("BERTH_DATABASE_URL") or None
        self.policy = policy or RestartPolicy()
        self.echo = echo
        self.on_ready = on_ready
        self.children: dict[str, Child] = {}
        self.proxy: dataplane.DataPlaneProxy | None = None
        self._proxy_task: asyncio.Task[None] | None = None
        self.phase = "starting"
        self.exit_code = 0
        self.started_at = time.time()
        self.log: Any = structlog.get_logger("supervisor")
        self._stop = asyncio.Event()
        if self.external_db:
            parts = urlsplit(self.external_db)
            self.pg_host, self.pg_port = parts.hostname or "127.0.0.1", parts.port or 5432
        else:
            self.pg_host, self.pg_port = "127.0.0.1", self.ports["postgres"]
        self.probes: dict[str, Probe] = {
            **infra_probes(
                self.ports, self.pg_host, self.pg_port, nats_auth.password_file(self.paths.root, nats_auth.OPERATOR)
            ),
            **service_probes(self.ports),
        }

    # --- state file -----------------------------------------------------------------------------

    def component_process(self, component: str) -> str | None:
        if component == "postgres" and self.external_db:
            return None
        if component in ("postgres", "nats", "traefik"):
            return component
        return ALL_IN_ONE if self.all_in_one else component

    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "mode": "all-in-one" if self.all_in_one else "split",
            "data_dir": str(self.paths.root),
            "phase": self.phase,
            "started_at": self.started_at,
            "ports": self.ports,
            "urls": {
                "api": f"http://127.0.0.1:{self.ports['api']}",
                "proxy": f"http://{self.proxy_host}:{self.ports['proxy']}",
                "nats": f"nats://127.0.0.1:{self.ports['nats']}",
                "traefik_api": f"http://127.0.0.1:{self.ports['traefik_api']}",
                "postgres": "external" if self.external_db else f"127.0.0.1:{self.pg_port}",
            },
            "components": {
                name: {
                    "probe": vars(probe),
                    "process": self.component_process(name),
                    "log": str(self.paths.log(self.component_process(name) or "supervisor")),
                }
                for name, probe in self.probes.items()
            },
            "children": {
                **{name: child.public() for name, child in self.children.items()},
                **({dataplane.NAME: self.proxy.public()} if self.proxy is not None else {}),
            },
        }

    def save(self) -> None:
        write_json(self.paths.state, self.snapshot())

    # --- children -------------------------------------------------------------------------------

    async def _spawn(self, child: Child) -> asyncio.subprocess.Process:
        spec = child.spec
        rotate(child.log_path)
        with child.log_path.open("ab") as out:
            return await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env={**scrub_env(self.env), **spec.env, SUPERVISED_BY: str(self.paths.root)},
                start_new_session=True,
                preexec_fn=die_with_parent,
                **components.as_user(spec.user),  # type: ignore[arg-type]
            )

    async def _run_child(self, child: Child) -> None:
        name = child.spec.name
        while not child.stop.is_set():
            child.state = "starting"
            try:
                child.proc = await self._spawn(child)
            except OSError as exc:
                self.log.error("child failed to start", child=name, error=str(exc))
                rc, uptime = -1, 0.0
            else:
                child.started_at = time.time()
                child.state = "running"
                if child.stop.is_set():  # stopped while it was being spawned
                    child.proc.send_signal(getattr(signal, child.spec.stop_signal))
                self.log.info("child started", child=name, pid=child.proc.pid, restarts=child.restarts)
                self.save()
                rc = await child.proc.wait()
                uptime = time.time() - child.started_at
            child.last_exit = rc
            if child.stop.is_set():
                self.log.info("child stopped", child=name, exit=rc)
                break
            child.failures = self.policy.failures_after_exit(child.failures, uptime)
            delay = self.policy.delay(child.failures)
            child.state = "backoff"
            child.restarts += 1
            self.log.warning(
                "child exited, restarting", child=name, exit=rc, uptime_s=round(uptime, 1), restart_in_s=delay
            )
            self.save()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.stop.wait(), delay)
        child.state = "stopped"

    def start_proxy(self, argv: list[str], env: Mapping[str, str]) -> None:
        """Traefik, detached: adopted when it already runs with this configuration (``berth_cli.dataplane``)."""
        static = (self.paths.root / "traefik" / "static.yml").read_text()
        self.proxy = dataplane.DataPlaneProxy(
            self.paths.root,
            argv,
            dict(env),
            scrub_env(self.env),
            self.paths.log(dataplane.NAME),
            self.policy,
            self.log,
            on_change=self.save,
        )
        self._proxy_task = asyncio.create_task(self.proxy.run(self._stop, static), name=dataplane.NAME)

    def start_child(self, spec: ChildSpec) -> Child:
        child = Child(spec, self.paths.log(spec.name))
        self.children[spec.name] = child
        child.task = asyncio.create_task(self._run_child(child), name=spec.name)
        return child

    async def stop_child(self, child: Child) -> None:
        child.stop.set()
        proc = child.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(getattr(signal, child.spec.stop_signal))
        assert child.task is not None
        try:
            await asyncio.wait_for(asyncio.shield(child.task), child.spec.stop_timeout_s)
        except TimeoutError:
            self.log.warning("child did not stop in time, killing", child=child.spec.name)
        if proc is not None:
            # the whole process group: helpers a child started die with it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        await child.task

    # --- start-up -------------------------------------------------------------------------------

    async def _wait_ready(self, names: list[str]) -> bool:
        while not self._stop.is_set():
            if all((await check_all({n: self.probes[n] for n in names}, 2.0)).values()):
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.3)
        return False

    async def _provision(self, secret: str, admin_url: str) -> dict[str, str] | None:
        """Create the roles and schemas and migrate them (a one-shot child); retried until the roles exist."""
        env = {
            **scrub_env(self.env),
            "BERTH_DATABASE_URL": admin_url,
            "BERTH_SECRET_KEY": secret,
            SUPERVISED_BY: str(self.paths.root),
            PROVISION_MIGRATES: "1",  # and the services' schemas migrated: each service finds its own at head
        }
        if not self.external_db:
            env["BERTH_CREATE_DATABASE"] = DATABASE
        return await oneshot.provision_roles(env, self.paths.log("provision"), self._stop, self.policy, self.log)

    async def _nats_config(self) -> Path | None:
        """Write nats-server's configuration (users, permissions) in a one-shot child; its path, or None
        (logged, and the supervisor stops) when that failed."""
        path = await oneshot.write_nats_config(self.paths.root, self.paths.log("nats-config"), self.log)
        if path is None:
            self.exit_code = 1
            self._stop.set()
        return path

    async def _start_nats(self) -> bool:
        """nats-server on its configuration (written first, by a one-shot child); False when that failed."""
        nats_config = await self._nats_config()
        if nats_config is None:
            return False
        # no monitoring port: it answers anyone on the host; the probe asks over an authenticated connection
        nats = components.nats_launch(self.paths.root, self.ports["nats"], config=nats_config)
        self.start_child(ChildSpec("nats", nats.argv, nats.env))
        return True

    async def _start_postgres(self) -> str:
        """Postgres (its cluster made by initdb the first time); its admin URL."""
        password = ensure_secret(self.paths.pg_password, 24)
        launch = await asyncio.to_thread(
            components.pg_launch,
            self.paths.pgdata,
            self.ports["postgres"],
            password,
            shared_buffers=PG_SHARED_BUFFERS,
            max_connections=PG_MAX_CONNECTIONS,
            settings=PG_SMALL,
        )
        cluster = Path(launch.argv[launch.argv.index("-D") + 1])
        if cluster != self.paths.pgdata:
            self.log.info("postgres cluster outside the data dir: its parents are private", cluster=str(cluster))
        self.start_child(ChildSpec("postgres", launch.argv, launch.env, launch.user, "SIGINT", 30.0))
        return components.pg_admin_url(self.ports["postgres"], password)

    async def _start_database(self, secret: str) -> dict[str, str] | None:
        """Postgres (or the external server) ready, then Traefik started while the database roles are
        provisioned and the schemas migrated; each service's database URL, or None when stopped first."""
        admin_url = self.external_db or await self._start_postgres()
        self.save()
        if not await self._wait_ready(["postgres"]):
            return None
        self.log.info("postgres ready")
        tls_port = proxy_tls_port(self.env, self.ports)
        traefik = components.traefik_launch(
            self.paths.root,
            self.proxy_host,
            self.ports["proxy"],
            self.ports["traefik_api"],
            websecure_port=tls_port,
            env=self.env,
        )
        self.start_proxy(traefik.argv, traefik.env)
        return await self._provision(secret, admin_url)

    async def _start(self) -> None:
        paths = self.paths
        secret = ensure_secret(paths.secret_key)
        # nats-server's configuration (a Python child's start) is written, and nats-server started, while
        # Postgres starts (initdb on a fresh data dir) and the schemas are migrated: neither needs the bus
        nats_started = asyncio.create_task(self._start_nats())
        try:
            urls = await self._start_database(secret)
            if urls is None or not await nats_started or not await self._wait_ready(["nats"]):
                return
        finally:
            if not nats_started.done():  # stopped or failed first: no nats-server starts after the shutdown began
                nats_started.cancel()
        self.log.info("nats ready")
        tls_port = proxy_tls_port(self.env, self.ports)
        common = platform_env(paths, self.ports, secret, self.proxy_host)
        common["BERTH_METRICS_TOKEN"] = ensure_secret(paths.metrics_token, 32)  # Prometheus' bearer token
        common["BERTH_PROXY_TLS_PORT"] = str(tls_port)  # proxy-sync looks at the certificates served there
        bin_dir = Path(sys.executable).parent
        passwords = nats_auth.ensure_passwords(paths.root)
        for spec in service_children(bin_dir, self.ports, urls, common, self.all_in_one, passwords):
            self.start_child(spec)
        self.phase = "running"
        self.save()
        if await self._wait_ready(list(self.probes)):
            self.log.info("platform ready", api=f"http://127.0.0.1:{self.ports['api']}")
            if self.on_ready is not None:
                self.on_ready(self.snapshot())

    async def run(self) -> None:
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.log = configure_logging(self.paths.log("supervisor"), self.echo)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._stop.set)
        self.log.info("supervisor starting", pid=os.getpid(), mode="all-in-one" if self.all_in_one else "split")
        self.save()
        starter = asyncio.create_task(self._start())
        starter.add_done_callback(self._start_done)
        try:
            await self._stop.wait()
        finally:
            self.phase = "stopping"
            self.save()
            self.log.info("stopping")
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starter
            await self.shutdown()

    def _start_done(self, task: asyncio.Task[None]) -> None:
        """A start-up that raised (initdb failed, a bad setting...) stops the supervisor, loudly."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.log.error("start-up failed, stopping", error=f"{type(exc).__name__}: {exc}")
        self.exit_code = 1
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop the children in reverse start order: services together, then nats and Postgres together
        (neither needs the other once the services are gone). Traefik is left serving (its watcher ends with
        ``_stop``)."""
        services = [c for n, c in self.children.items() if n not in ("postgres", "nats")]
        await asyncio.gather(*(self.stop_child(c) for c in services))
        if self._proxy_task is not None:
            with contextlib.suppress(Exception):
                await self._proxy_task
        await asyncio.gather(*(self.stop_child(self.children[n]) for n in ("nats", "postgres") if n in self.children))
        self.phase = "stopped"
        self.save()
        self.log.info("supervisor stopped")


def run_supervisor(
    data_dir: Path,
    all_in_one: bool,
    echo: bool = False,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = acquire_pidfile(Paths(data_dir).pidfile)
    supervisor = Supervisor(data_dir, all_in_one, echo=echo, on_ready=on_ready)
    try:
        asyncio.run(supervisor.run())
    finally:
        Paths(data_dir).pidfile.unlink(missing_ok=True)
        lock.close()
    if supervisor.exit_code:
        raise SystemExit(supervisor.exit_code)
