"""Builds cannot starve running applications: latency and failed requests through Traefik to a serving
application while a CPU-heavy image builds on the same machine.

The platform runs as a user runs it (``berth up``, its builder on the local engine with BuildKit). One
application serves (busybox httpd with CGI scripts, ``benchmarks.support.load.CGI_APP``); a separate
process sends it a steady 200 requests/s through Traefik (open loop, keep-alive connections, the ``cgi``
mix: per 20 requests 16 ``GET /``, 3 small ``POST`` to a CGI script that reads its body, one 2-s
request). After a quiet window, a second application is deployed from a git repository on disk whose
Dockerfile has a CPU-bound ``RUN`` step (two busy loops, one per core, for ``BURN_S``; a nonce in the
step so no layer cache skips it), so the builder builds it on this machine; a quiet window follows the
deployment's end.

``baseline_p99_ms``: p99 latency of the ``GET`` and ``POST`` requests in the quiet windows (the 2-s
requests are left out of both p99s: they measure the script's sleep); ``during_build_p99_ms``: the same
from the deployment's start to its end; ``errors``: answers that are not 200 and connection errors
over both windows, every kind of request (a request the generator could not send because every
connection was busy is counted apart, ``skipped``); ``requests``: requests due in both windows.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench_rolling import summarise
from benchmarks.support.events import EventLog
from benchmarks.support.http import wait_status
from benchmarks.support.load import CGI_APP, LoadProcess
from benchmarks.support.platform import Api, BerthUp, busybox_image, host_of
from berth_common.settings import BaseServiceSettings

NAME = "build_isolation"
GOALS = {"errors": ("<=", 0), "during_build_vs_baseline_p99": ("<=", 2.0)}
RATE = 200.0
QUIET_S = 20.0
BURN_S = 25
FAST = ("GET /", "POST /cgi-bin/echo")
BUILDKIT_SHARES = Path("/sys/fs/cgroup/cpu/docker/buildkit/cpu.shares")


def _git(repo: Path, *args: str) -> None:
    argv = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args]
    subprocess.run(argv, cwd=repo, capture_output=True, text=True, check=True)


def heavy_repo(root: Path, base: str) -> Path:
    """A repository whose image takes ``BURN_S`` of both cores to build (a nonce defeats the layer cache)."""
    repo = root / "heavy"
    repo.mkdir()
    burn = "while :; do :; done"
    (repo / "Dockerfile").write_text(
        f"FROM {base}\n"
        f"RUN echo {uuid.uuid4().hex} && for i in 1 2; do (timeout {BURN_S} sh -c '{burn}' || true) & done; wait\n"
        "RUN mkdir -p /www && echo heavy > /www/index.html\n"
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
    )
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "heavy")
    return repo


async def _app(api: Api, env_id: str, name: str, source: dict[str, Any], command: list[str] | None) -> dict[str, Any]:
    service: dict[str, Any] = {"kind": "web", "name": "web", "port": 8080, "health_path": "/"}
    if command:
        service["command"] = command
    body = {"name": name, "source": source, "services": [service], "stop_timeout_s": 2}
    app: dict[str, Any] = await api._call("POST", f"/v1/environments/{env_id}/applications", 201, body)
    api.platform.apps.append(app["id"])
    return app


def _fast(samples: list[list[Any]]) -> list[list[Any]]:
    return [s for s in samples if s[5] in FAST]


def timeline(samples: list[list[Any]], step_s: float = 5.0) -> list[list[Any]]:
    """``[start_s, p99_ms of GET and POST, errors]`` per ``step_s`` of the run: where the tail and the
    failures fall against the build's window."""
    out: list[list[Any]] = []
    last = max((s[0] for s in samples), default=0.0)
    t = 0.0
    while t <= last:
        part = [s for s in samples if t <= s[0] < t + step_s]
        summary = summarise(_fast(part))
        out.append([t, summary["p99_ms"], summarise(part)["errors"]])
        t += step_s
    return out


async def measure(platform: BerthUp, root: Path) -> dict[str, Any]:
    api = Api(platform)
    events = await EventLog(platform.events_url).start()
    load: LoadProcess | None = None
    try:
        env_id = await api.environment(f"bench-isolation-{os.getpid()}")
        base = busybox_image()
        serving = await _app(api, env_id, "serving", {"kind": "image", "image": base}, ["sh", "-c", CGI_APP])
        host = host_of(serving)
        await events.finished((await api.deploy(serving["id"], drain_grace_s=1.0))["id"])
        await wait_status(platform.proxy_port, host)
        repo = await asyncio.to_thread(heavy_repo, root, base)
        heavy = await _app(api, env_id, "heavy", {"kind": "git", "repository": str(repo), "branch": "main"}, None)

        load = LoadProcess(platform.proxy_port, host, RATE, mix="cgi").start()
        await asyncio.sleep(QUIET_S)
        build_start = time.monotonic()
        deployment = await api.deploy(heavy["id"], drain_grace_s=1.0)
        finished = await events.finished(deployment["id"], timeout=600)
        build_end = time.monotonic()
        await asyncio.sleep(QUIET_S)
        result = await asyncio.to_thread(load.stop)
        load = None
    finally:
        if load is not None:
            load.kill()
        await events.close()
        await api.close()

    t0 = result["start_monotonic"]
    during = [s for s in result["samples"] if build_start <= t0 + s[0] < build_end]
    quiet = [s for s in result["samples"] if not build_start <= t0 + s[0] < build_end]
    quiet = [s for s in quiet if s[0] >= 2.0]  # the first 2 s open the connections
    base, busy = summarise(_fast(quiet)), summarise(_fast(during))
    everything = summarise(quiet + during)
    slow = summarise([s for s in during if s[5] == "GET /cgi-bin/slow"])
    limits = BaseServiceSettings().background_limits
    return {
        "baseline_p99_ms": base["p99_ms"],
        "during_build_p99_ms": busy["p99_ms"],
        "during_build_vs_baseline_p99": round(busy["p99_ms"] / base["p99_ms"], 2)
        if base["p99_ms"] and busy["p99_ms"]
        else None,
        "errors": everything["errors"],
        "error_kinds": everything["error_kinds"],
        "requests": everything["requests"],
        "skipped": everything["skipped"],
        "baseline_p50_ms": base["p50_ms"],
        "during_build_p50_ms": busy["p50_ms"],
        "during_build_max_ms": busy["max_ms"],
        "during_build_slow_p50_ms": slow["p50_ms"],
        "build_deploy_s": round(build_end - build_start, 2),
        "build_window_s": [round(build_start - t0, 1), round(build_end - t0, 1)],
        "timeline": timeline(result["samples"]),
        "error_samples": [s for s in result["samples"] if s[2] not in (200, -2)][:20],
        "build_outcome": finished.type,
        "burn_s": BURN_S,
        "limits": {**limits.host_config(), "build_query": limits.build_query()},
        "buildkit_cpu_shares": int(BUILDKIT_SHARES.read_text()) if BUILDKIT_SHARES.exists() else None,
    }


async def run() -> dict[str, Any]:
    busybox_image()
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="berth-bench-isolation-"))
    platform = await asyncio.to_thread(BerthUp(extra_env={"BERTH_ALLOW_LOCAL_GIT": "1"}).start)
    try:
        result = await measure(platform, root)
    finally:
        await asyncio.to_thread(platform.stop)
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return {**result, "rate_per_s": RATE, "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
