"""``berth up`` / ``berth down`` / ``berth status``: drive the supervisor of one data dir from the outside."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from berth_cli import dataplane
from berth_cli.datadir import read_json, tail
from berth_cli.layout import (
    INFRA,
    PORT_SPAN,
    SERVICE_NAMES,
    SUPERVISED_BY,
    Paths,
    check_host,
    is_supervisor,
    proxy_tls_port,
    resolve_ports,
)
from berth_cli.probes import check_all, probe_from_dict


class PlatformError(RuntimeError):
    """Something the user must act on; the message says what."""


def supervisor_pid(paths: Paths) -> int | None:
    """The pid of the supervisor holding this data dir's pidfile lock, or None when none runs."""
    try:
        f = paths.pidfile.open("r")
    except FileNotFoundError:
        return None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = f.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return None


def busy_ports(env: dict[str, str], held: Collection[int] = ()) -> list[str]:
    """The ports the platform would bind that something else already holds ('name port' each); ``held``:
    ports of this platform's own data plane (its Traefik, adopted by the next supervisor)."""
    ports = resolve_ports(env)
    proxy_host = check_host("BERTH_PROXY_HOST", env.get("BERTH_PROXY_HOST", "127.0.0.1"))
    busy = []
    wanted = {**ports, "proxy_tls": proxy_tls_port(env, ports)}  # Traefik's HTTPS entry point too
    for name, port in wanted.items():
        if (name == "postgres" and env.get("BERTH_DATABASE_URL")) or port in held:
            continue
        host = proxy_host if name in ("proxy", "proxy_tls") else "127.0.0.1"
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not busy
            try:
                s.bind((host, port))
            except OSError:
                busy.append(f"{name} {host}:{port}")
    return busy


def ephemeral_low(default: int = 32768) -> int:
    """The first port the kernel hands out to outgoing connections and to binds on port 0."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def free_port_base(low: int = 20000, high: int = 32000, attempts: int = 200) -> int:
    """A BERTH_PORT_BASE whose whole range is free on 127.0.0.1 now (tests, benchmarks, a second platform).

    The range stays below the kernel's ephemeral ports: a port found free there can be taken by any
    outgoing connection or port-0 bind before the platform binds it."""
    import random

    high = min(high, ephemeral_low())
    count = PORT_SPAN + 1  # and the HTTPS port after them
    for _ in range(attempts):
        base = random.randrange(low, high - count)  # noqa: S311 - not security relevant
        if not busy_ports({"BERTH_PORT_BASE": str(base)}):
            return base
    raise PlatformError(f"no free range of {count} ports between {low} and {high}")


# --- status ----------------------------------------------------------------------------------------


@dataclass
class ComponentStatus:
    name: str
    healthy: bool
    process: str | None = None
    pid: int | None = None
    restarts: int = 0
    state: str = "down"
    log: str = ""


@dataclass
class PlatformStatus:
    running: bool
    supervisor_pid: int | None = None
    mode: str | None = None
    urls: dict[str, str] = field(default_factory=dict)
    components: list[ComponentStatus] = field(default_factory=list)
    traefik_pid: int | None = None  # the data plane's Traefik, which runs without the control plane

    @property
    def healthy(self) -> bool:
        return self.running and bool(self.components) and all(c.healthy for c in self.components)

    def unhealthy(self) -> list[ComponentStatus]:
        return [c for c in self.components if not c.healthy]

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "healthy": self.healthy,
            "supervisor_pid": self.supervisor_pid,
            "mode": self.mode,
            "urls": self.urls,
            "components": {c.name: {k: v for k, v in vars(c).items() if k != "name"} for c in self.components},
            "data_plane": {"traefik_pid": self.traefik_pid},
        }


def platform_status(paths: Paths, timeout: float = 3.0) -> PlatformStatus:
    pid = supervisor_pid(paths)
    state = read_json(paths.state)
    if pid is None or state is None or state.get("pid") != pid:
        return PlatformStatus(running=False, traefik_pid=dataplane.serving(paths.root))
    comps: dict[str, dict[str, Any]] = state.get("components", {})
    children: dict[str, dict[str, Any]] = state.get("children", {})
    results = asyncio.run(check_all({n: probe_from_dict(c["probe"]) for n, c in comps.items()}, timeout))
    rows = []
    order = {name: i for i, name in enumerate((*INFRA, *SERVICE_NAMES))}
    for name, comp in sorted(comps.items(), key=lambda item: order.get(item[0], len(order))):
        child = children.get(comp.get("process") or "", {})
        rows.append(
            ComponentStatus(
                name=name,
                healthy=results[name],
                process=comp.get("process"),
                pid=child.get("pid"),
                restarts=int(child.get("restarts", 0)),
                state=str(child.get("state", "external" if comp.get("process") is None else "pending")),
                log=str(comp.get("log", "")),
            )
        )
    traefik = children.get("traefik", {}).get("pid")
    return PlatformStatus(True, pid, state.get("mode"), dict(state.get("urls", {})), rows, traefik)


def format_status(status: PlatformStatus) -> str:
    if not status.running:
        text = "berth is not running (start it with `berth up`)"
        if status.traefik_pid is not None:
            text += f"\ntraefik (pid {status.traefik_pid}) keeps serving the applications (`berth down --all` stops it and them)"
        return text
    lines = [f"supervisor pid {status.supervisor_pid}, mode {status.mode}"]
    header = ("COMPONENT", "HEALTH", "PROCESS", "PID", "RESTARTS", "STATE")
    rows = [
        (c.name, "ok" if c.healthy else "DOWN", c.process or "-", str(c.pid or "-"), str(c.restarts), c.state)
        for c in status.components
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


# --- up --------------------------------------------------------------------------------------------


def spawn_supervisor(paths: Paths, all_in_one: bool) -> subprocess.Popen[bytes]:
    paths.logs.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "berth_cli.supervise", "--data-dir", str(paths.root)]
    if all_in_one:
        argv.append("--all-in-one")
    with (paths.logs / "supervisor.out").open("ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_ready(paths: Paths, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> PlatformStatus:
    """Poll until every component is ready; on timeout raise with the failing components' log tails."""
    deadline = time.monotonic() + timeout
    status = PlatformStatus(running=False)
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            parts = [f"the supervisor exited with code {proc.returncode}"]
            for log in (paths.log("supervisor"), paths.logs / "supervisor.out"):
                if text := tail(log, 15):
                    parts.append(f"--- {log} (last lines) ---\n{text}")
            raise PlatformError("\n".join(parts))
        status = platform_status(paths, timeout=2.0)
        if status.healthy:
            return status
        time.sleep(0.2)  # the api's readiness is the last step of `berth up`: seen within a fifth of a second
    if not status.running:
        raise PlatformError(
            f"the supervisor did not come up in {timeout:.0f}s; its log:\n{tail(paths.log('supervisor'))}"
        )
    parts = [f"not ready after {timeout:.0f}s: {', '.join(c.name for c in status.unhealthy())}"]
    seen = set()
    for comp in status.unhealthy():
        if comp.log in seen:
            continue
        seen.add(comp.log)
        parts.append(f"--- {comp.log} (last lines) ---\n{tail(Path(comp.log)) or '(empty)'}")
    parts.append("the supervisor keeps retrying; `berth status` shows progress, `berth down` stops it")
    raise PlatformError("\n".join(parts))


def token_problem(api_url: str, token: str, timeout: float = 5.0) -> str | None:
    """Why the admin token does not work against the api at ``api_url`` (None: it works)."""
    import httpx

    try:
        r = httpx.get(f"{api_url.rstrip('/')}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"could not be checked ({type(exc).__name__})"
    if r.status_code == 200:
        return None
    if r.status_code in (401, 429):
        return "does not work (revoked, expired or replaced)"
    return f"could not be checked (the api answered {r.status_code})"


def banner(paths: Paths, urls: dict[str, str]) -> str:
    """What ``berth up`` prints: where things are, and the admin token once the api accepted it."""
    lines = [f"Berth is up (data in {paths.root})", f"  API:   {urls.get('api', '?')}"]
    lines.append(f"  proxy: {urls.get('proxy', '?')}")
    try:
        token = paths.admin_token.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token:
        lines.append(f"  admin token: {token}")
        problem = token_problem(urls["api"], token) if urls.get("api") else None
        if problem is not None and problem.startswith("does not work"):
            lines.append(f"  the admin token {problem}: `berth admin token --data-dir {paths.root}` mints a new one")
        elif problem is not None:
            lines.append(f"  the admin token {problem}")
    else:
        lines.append(f"  admin token: missing ({paths.admin_token} is written by the api on its first start)")
    return "\n".join(lines)


def up(paths: Paths, all_in_one: bool, timeout: float) -> PlatformStatus:
    """Start the supervisor detached (unless one runs already) and wait until the platform is ready."""
    proc = None
    if supervisor_pid(paths) is None:
        from berth_cli.components import traefik_binary

        traefik_binary(os.environ)  # a bad BERTH_TRAEFIK_BINARY is said here, not in the supervisor's log
        busy = busy_ports(dict(os.environ), dataplane.held_ports(paths.root))
        if busy:
            raise PlatformError(
                "ports already in use: " + ", ".join(busy) + " (set BERTH_PORT_BASE or the BERTH_*_PORT variables)"
            )
        proc = spawn_supervisor(paths, all_in_one)
    else:
        state = read_json(paths.state) or {}
        if state.get("mode") != ("all-in-one" if all_in_one else "split"):
            print(f"berth is already running in {state.get('mode')} mode; run `berth down` first to switch")
    return wait_ready(paths, timeout, proc)


# --- down ------------------------------------------------------------------------------------------


def leftovers(root: Path) -> list[psutil.Process]:
    """Processes the supervisor of ``root`` started (they carry its marker variable), and the detached
    supervisor itself. This process and its parents are never included (`make down` names the data dir)."""
    found = []
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.pid in skip:
            continue
        try:
            if is_supervisor(p.info["cmdline"] or [], root) or p.environ().get(SUPERVISED_BY) == str(root):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _terminate(procs: list[psutil.Process], timeout: float) -> None:
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def down(paths: Paths, timeout: float = 90.0, everything: bool = False) -> list[int]:
    """Stop the supervisor (which stops its children in order), then make sure nothing of it remains. The
    data plane (Traefik, and the applications' containers) keeps serving; ``everything`` stops Traefik too.

    Returns the pids that had to be cleaned up after the supervisor.
    """
    pid = supervisor_pid(paths)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while supervisor_pid(paths) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if supervisor_pid(paths) is not None:
            os.kill(pid, signal.SIGKILL)
        try:
            psutil.Process(pid).wait(10)
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            pass
    stray = leftovers(paths.root)
    _terminate(stray, 10.0)
    if everything:
        dataplane.stop(paths.root)
    if supervisor_pid(paths) is None:
        paths.pidfile.unlink(missing_ok=True)  # left by a supervisor that was killed (nobody holds its lock)
    return [p.pid for p in stray]
