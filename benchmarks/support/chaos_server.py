"""The chaos suite's test server: a namespace server (its own dockerd and sshd, ``tests/support/testservers.py``)
added to the running platform, its engine restarted and its disk filled while deployments go on.

- ``Remote.add`` adds the server through the REST API by key and waits until the scheduler validated it;
  the engine's data root is a file system of its own (``DATA_MB``, loop-mounted), so the disk can be filled.
- ``ServerStorm`` strikes it: ``engine`` kills -9 its dockerd and starts a new one on the same data root (the
  containers it ran stay down until Berth starts them again: a crashed engine does not apply restart
  policies to what it finds); ``disk`` fills its data root to the last byte with one file, requests a
  deployment of an application placed there, waits for its end (a full disk must fail it with the words
  "no space left on device", which ``disk_reasons`` keeps) and frees the disk.
- ``Remote.containers`` and ``Remote.check_routes`` give the invariants of ``chaos_checks.py`` the server's
  side: its engine's containers, its Traefik's route files (upstreams by container name on its network).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.support import chaos_checks as checks
from tests.support.testservers import TestServer, make_net, remove_net, start_server, stop_server

DATA_MB = 2300  # the server engine's disk (a sparse file): Berth accepts a server with 2 GiB free, no less
WEB_PORT = 80  # the server's Traefik (proxy-sync's default ``server_web_port``), in the server's namespace
REASON_WORDS = "no space left on device"
HOLDER = "berth-traefik-net"  # the container whose network namespace the server's Traefik serves in
# asked from the server's namespace: what a replica's address answers past Traefik, for a person
ASK = (
    "import sys, urllib.request as u\n"
    "try: print(u.urlopen(sys.argv[1], timeout=3).read()[:60])\n"
    "except Exception as e: print(type(e).__name__, e)"
)


@dataclass
class Remote:
    """The run's test server and what the platform calls it."""

    server: TestServer
    net: Any
    traefik_root: Path
    name: str = "chaos-server"
    server_id: str = ""
    looked: dict[str, str] = field(default_factory=dict)  # application id -> what ``look_at`` last showed

    @classmethod
    def start(cls, traefik_root: Path, image: str) -> Remote:
        net = make_net()
        try:
            server = start_server(net, 2, data_mb=DATA_MB)
        except BaseException:
            remove_net(net)
            raise
        remote = cls(server, net, traefik_root)
        server.load_image(image)
        return remote

    def stop(self, keep_logs: Path | None = None) -> None:
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.server.root / "dockerd.log", keep_logs / "test-server-dockerd.log")
            for name in ("berth-traefik", HOLDER):  # the server's Traefik, as its engine kept it
                where = ["-H", self.server.docker_host]
                seen = subprocess.run([checks.DOCKER, *where, "logs", "-t", name], capture_output=True, timeout=60)
                (keep_logs / f"test-server-{name}.log").write_bytes(seen.stdout + seen.stderr)
        self.server.free_disk()
        stop_server(self.server)
        remove_net(self.net)

    async def add(self, call: Callable[..., Awaitable[Any]], timeout: float = 120) -> None:
        """Add the server by key (``call``: the chaos client's ``call``); wait until it is ``ready``."""
        body = {"name": self.name, "host": self.server.address, "port": 22, "user": "root"}
        made = await call("POST", "/v1/servers", 201, {**body, "private_key": self.server.private_key_pem})
        self.server_id = made["id"]
        deadline = time.monotonic() + timeout
        while (got := await call("GET", f"/v1/servers/{self.server_id}", 200))["state"] != "ready":
            if time.monotonic() > deadline:
                raise RuntimeError(f"test server not validated: {got['state']}")
            await asyncio.sleep(0.5)

    def containers(self, team: str) -> list[checks.Container]:
        return checks.containers(f"berth.team={team}", host=self.server.docker_host)

    def look_at(self, app_id: str) -> str:
        """What the server shows of an application that answers wrong, for the run's output: each of its
        containers' state, start, pid and address (with the MAC the server's neighbour table has for it), and
        what that address answers asked straight from the server's namespace, past Traefik (port 8080: the
        run's applications'; the Traefik's holder, whose namespace Traefik serves in, is shown too: its API
        on port 8081); then what holds the server's network namespaces and its web port (:meth:`_namespaces`)."""
        seen = []
        names = [c.name for c in checks.containers(f"berth.app={app_id}", host=self.server.docker_host)]
        ns = self._in_server
        for name in [*names, HOLDER]:
            try:
                info = json.loads(checks.docker("inspect", name, host=self.server.docker_host))[0]
            except (subprocess.SubprocessError, ValueError, IndexError) as exc:
                seen.append(f"{name}: not inspected ({type(exc).__name__})")
                continue
            state = info.get("State") or {}
            for net, ep in ((info.get("NetworkSettings") or {}).get("Networks") or {}).items():
                ip, mac = ep.get("IPAddress") or "", ep.get("MacAddress") or ""
                url = f"http://{ip}:8081/ping" if name == HOLDER else f"http://{ip}:8080/"
                ask = [*ns, sys.executable, "-c", ASK, url] if ip else ["true"]
                answer = subprocess.run(ask, capture_output=True, text=True, timeout=15).stdout.strip()
                neigh = subprocess.run([*ns, "ip", "neigh", "show", ip], capture_output=True, text=True, timeout=15)
                # read after the ask: the bridge learns where the address's MAC is from the answer
                fdb = subprocess.run([*ns, "bridge", "fdb", "show"], capture_output=True, text=True, timeout=15).stdout
                ports = [line.split(" master")[0] for line in fdb.splitlines() if mac and line.startswith(mac)]
                own = _own_port(int(state.get("Pid") or 0))
                seen.append(
                    f"{name} {state.get('Status')} started {state.get('StartedAt')} pid {state.get('Pid')} on {net} {ip} "
                    f"mac {mac} (neighbour: {neigh.stdout.strip() or '-'}; bridge ports: {ports}; its own: {own}): "
                    f"{answer}"
                )
        try:
            seen.append(self._namespaces())
        except (subprocess.SubprocessError, OSError) as exc:
            seen.append(f"namespaces not read ({type(exc).__name__}: {exc})")
        return "; ".join(seen)

    @property
    def _in_server(self) -> list[str]:
        """The argv prefix that runs a command in the server's network namespace."""
        return ["ip", "netns", "exec", self.server.name]

    def _namespaces(self) -> str:
        """The engine's namespace files (under its exec root's ``netns``) that are mounted, each with whether a
        running container has it and its ``eth0`` address; the veths on the server's bridges, with the process
        holding each one's namespace (:func:`_holders`); and the web
        port's way in: the engine's DNAT rule for it, what listens on it in the server's namespace (the
        engine's userland proxy) and what listens in the holder's (Traefik)."""
        running = checks.docker("ps", "-q", "--no-trunc", host=self.server.docker_host).split()
        keys = set()
        if running:
            out = checks.docker(
                "inspect", "-f", "{{.NetworkSettings.SandboxKey}}", *running, host=self.server.docker_host
            )
            keys = {Path(line).name for line in out.split()}
        files = []
        for f in sorted((self.server.root / "exec" / "netns").glob("*")):
            if not os.path.ismount(f):
                continue
            ip = ["nsenter", f"--net={f}", "ip", "-4", "-o", "addr", "show", "eth0"]
            words = subprocess.run(ip, capture_output=True, text=True, timeout=15).stdout.split()
            files.append(
                f"{f.name}{'' if f.name in keys else ' (no running container)'} {words[3] if len(words) > 3 else '-'}"
            )
        ns = self._in_server
        nat = subprocess.run([*ns, "iptables", "-t", "nat", "-S", "DOCKER"], capture_output=True, text=True, timeout=15)
        dnat = [line for line in nat.stdout.splitlines() if f"--dport {WEB_PORT} " in line]
        listen = subprocess.run(
            [*ns, "ss", "-Hltn", f"sport = :{WEB_PORT}"], capture_output=True, text=True, timeout=15
        )
        holder = checks.docker("inspect", "-f", "{{.State.Pid}}", HOLDER, host=self.server.docker_host).strip()
        inside = ["nsenter", "-t", holder, "-n", "ss", "-Hltn"] if holder.isdigit() and holder != "0" else ["true"]
        held = subprocess.run(inside, capture_output=True, text=True, timeout=15).stdout.split("\n")
        links = ["ip", "-n", self.server.name, "-o", "link", "show", "type", "veth"]
        veths = subprocess.run(links, capture_output=True, text=True, timeout=15).stdout.splitlines()
        bridged = [line.split(":")[0] + ":" + line.split(":")[1] for line in veths if " master " in line]
        listed = checks.docker("ps", "-a", "--format", "{{.ID}} {{.State}}", host=self.server.docker_host)
        states = dict(line.split(" ", 1) for line in listed.splitlines() if " " in line)
        return (
            f"namespace files mounted: {files}; veths on a bridge: {bridged} (held by {_holders(states)}); "
            f"port {WEB_PORT}: DNAT {dnat}, "
            f"listening in the server's namespace {listen.stdout.split()}, in the holder's {held}"
        )

    def check_routes(self, apps: list[dict[str, Any]], up: list[checks.Container], f: checks.Findings) -> None:
        routes = checks.route_files(self.traefik_root / self.server_id / "dynamic")
        checks.check_routes(routes, apps, up, f, upstream=lambda c: f"http://{c.name}:8080")


def _holders(states: dict[str, str]) -> dict[str, str]:
    """For each network namespace of the machine with an ``eth0``, keyed by the ifindex of its peer: one of its
    processes (pid, command, the container id of its control group with the state the server's engine lists
    for it from ``states``, short ids to states, its parent's command)."""
    seen: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                seen.setdefault(os.readlink(entry / "ns" / "net"), int(entry.name))
        except OSError:
            continue
    held = {}
    for pid in seen.values():
        port = _own_port(pid)
        if not port.isdigit():
            continue
        try:
            comm = (Path(f"/proc/{pid}") / "comm").read_text().strip()
            group = (Path(f"/proc/{pid}") / "cgroup").read_text().splitlines()[0].rsplit("/", 1)[-1][:12]
            parent = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[1]
            pcomm = (Path(f"/proc/{parent}") / "comm").read_text().strip()
        except (OSError, IndexError):
            continue
        state = states.get(group, "not listed")
        held[port] = f"{pid} {comm} of {group} ({state}) under {parent} {pcomm}"
    return held


def _own_port(pid: int) -> str:
    """The ifindex of the server-side veth of the process's ``eth0`` (its ``@if`` peer), or why not known."""
    if pid <= 0:
        return "-"
    argv = ["nsenter", "-t", str(pid), "-n", "ip", "-o", "link", "show", "eth0"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    words = done.stdout.split()
    return words[1].partition("@if")[2].rstrip(":") if len(words) > 1 else done.stderr.strip()[:60]


@dataclass
class ServerBlow:
    at_s: float
    target: str  # "engine" or "disk"
    took_s: float = 0.0
    detail: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "at_s": round(self.at_s, 2),
            "target": self.target,
            "took_s": round(self.took_s, 1),
            "detail": self.detail,
        }


@dataclass
class ServerStorm:
    """``blows`` ("engine", "disk") one after the other, a random pause (``pause_s``) before each: short, so
    that both land while the run's deployments are still being requested (the engine's restart alone takes
    some ten seconds), and the storm does not outlast them.
    ``deploy_there``: requests a deployment of an application on the server, returns its id and a
    coroutine function that waits for its end (the deployment as the API shows it)."""

    remote: Remote
    blows: list[str]
    rng: random.Random
    deploy_there: Callable[[], Awaitable[tuple[str, Callable[[], Awaitable[dict[str, Any]]]] | None]]
    pause_s: tuple[float, float] = (1.5, 6.0)
    done: list[ServerBlow] = field(default_factory=list)
    disk_reasons: list[str] = field(default_factory=list)
    engine_restarts: int = 0
    disk_fills: int = 0
    back_after_s: float | None = None  # after the last engine restart, until every invariant held again

    async def run(self) -> None:
        t0 = time.monotonic()
        for target in self.blows:
            await asyncio.sleep(self.rng.uniform(*self.pause_s))
            blow = ServerBlow(time.monotonic() - t0, target)
            start = time.monotonic()
            if target == "engine":
                await asyncio.to_thread(self.remote.server.restart_dockerd)
                self.engine_restarts += 1
            else:
                await self._fill(blow)
                self.disk_fills += 1
            blow.took_s = time.monotonic() - start
            self.done.append(blow)
            print(f"[chaos] test server {target} at {blow.at_s:.1f}s, {blow.took_s:.1f}s {blow.detail}", flush=True)

    async def _fill(self, blow: ServerBlow) -> None:
        """The disk filled, and kept full (what any removal frees is taken again at once, as by a runaway
        log) until the deployment requested meanwhile ended; then freed."""
        filled = await asyncio.to_thread(self.remote.server.fill_disk)
        full = True

        async def keep_full() -> None:
            while full:
                await asyncio.to_thread(self.remote.server.fill_disk)
                await asyncio.sleep(0.1)

        keeper = asyncio.create_task(keep_full())
        try:
            started = await self.deploy_there()
            if started is None:
                blow.detail = "no deployment accepted while full"
                return
            dep_id, wait = started
            ended = await wait()
            reason = (ended.get("reason") or "").strip()
            blow.detail = f"{filled >> 20} MiB filled; {dep_id} {ended['status']}: {reason[:200]}"
            if ended["status"] != "succeeded":
                self.disk_reasons.append(reason)
        finally:
            full = False
            await keeper
            await asyncio.to_thread(self.remote.server.free_disk)

    def counts(self) -> dict[str, Any]:
        return {
            "engine_restarts": self.engine_restarts,
            "disk_fills": self.disk_fills,
            "disk_full_failures": len(self.disk_reasons),
            "disk_full_said": sum(REASON_WORDS in r.lower() for r in self.disk_reasons),
            "disk_full_reasons": [r[:300] for r in self.disk_reasons],
            "server_back_after_s": self.back_after_s,
            "server_blows": [b.public() for b in self.done],
        }


async def start_server_storm(work: Any, there: list[dict[str, Any]], remote: Remote, rng: random.Random) -> ServerStorm:
    """The test server's storm, once each application placed there (``there``) is live (its first deployment,
    which also sets up the server's Traefik, is not part of the storm): its engine restarted and its disk
    filled once each, in random order. ``work``: the run's ``Workload`` (``deploy``, ``ended``)."""
    for n, app in enumerate(there):
        dep = await work.deploy(-1 - n, app)
        if dep is None or (await work.ended(dep))["status"] != "succeeded":
            raise RuntimeError(f"the first deployment of {app['name']} on the test server did not succeed")

    async def deploy_there() -> tuple[str, Any] | None:
        work.server_deploys += 1
        dep = await work.deploy(1000 + work.server_deploys, rng.choice(there))
        return (dep, lambda: work.ended(dep)) if dep else None

    blows = ["engine", "disk"]
    rng.shuffle(blows)
    return ServerStorm(remote, blows, random.Random(rng.random()), deploy_there)
