"""The api under read load: authenticated ``GET /v1/applications`` (the default page) for a team with
1,000 applications, against ``berth-api`` as a real separate process.

nats-server and Postgres are started from the project's launchers in a temporary directory, the api's
role provisioned, and the api started from its console script with its ``BERTH_`` environment (logs at
WARNING, as in production). The team's 1,000 applications are created through the API itself. The load
generator runs in another process: ``wrk`` (Debian's, installed when missing) or, failing that, a bounded
asyncio client; ``CONCURRENCY`` keep-alive connections for ``DURATION_S`` after a warm-up.

The default page is 200 applications (``limit=200``), served from the api's per-team page cache while
the team's revision holds (the load only reads, so after the first request every answer is a hit).

Also recorded: one request at a time (``serial_p50_ms``: the cost of one request with no queueing), the
cost of a page rebuilt after a write (``miss_p50_ms``: a PATCH of one application, then the GET that
rebuilds the page; the median of ``MISSES``), the page size and bytes of an answer, the api process's CPU
use during the load (100 = one core), the CPU the api and Postgres spent per request (a cost that hardly
depends on what else runs, unlike req/s), the same for the reference loads (a page of one application,
``GET /v1/me``, the default page revalidated with ``If-None-Match``: a 304 with no body, and the default
page with each request in flight carrying another of 32 tokens, so that the token checks that share a
statement do not share rows: wrk only) that show the fixed cost of a request, and the load average (a busy
machine shows there).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.support.api_load import ensure_wrk, rotating_tokens, run_python, run_wrk
from benchmarks.support.api_server import ApiProcess, running_api

NAME = "api"
GOALS = {"rps": (">=", 1000.0), "p99_ms": ("<=", 50.0)}
APPLICATIONS = 1000
CONCURRENCY = 32
DURATION_S = 15
WARMUP_S = 3
SERIAL_N = 100
PATH = "/v1/applications"
REFERENCE_S = 6
REFERENCES = {"page_of_1": f"{PATH}?limit=1", "me": "/v1/me"}
MISSES = 7
TOKENS = 32  # the distinct_tokens reference: one per connection
REFERENCE_KEYS = ("rps", "p99_ms", "api_cpu_ms_per_request", "postgres_cpu_ms_per_request")
APP_BODY: dict[str, Any] = {
    "source": {"kind": "image", "image": "registry.example.com/acme/shop:1.0"},
    "services": [
        {"kind": "web", "name": "web", "port": 8080, "replicas": 2, "health_path": "/healthz"},
        {"kind": "worker", "name": "jobs", "command": ["python", "-m", "jobs"]},
    ],
    "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "API_KEY", "value": "s3cret", "secret": True}],
    "limits": {"cpus": 0.5, "memory_mb": 256},
}


async def seed(url: str, token: str, count: int) -> None:
    """``count`` applications in one team: ten projects, their production environments."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        envs = []
        for p in range(10):
            r = await client.post("/v1/projects", json={"name": f"bench-{p}"})
            r.raise_for_status()
            envs.append(r.json()["environments"][0]["id"])
        sem = asyncio.Semaphore(8)

        async def make(i: int) -> None:
            async with sem:
                body = {**APP_BODY, "name": f"app-{i:04d}"}
                r = await client.post(f"/v1/environments/{envs[i % len(envs)]}/applications", json=body)
                r.raise_for_status()

        await asyncio.gather(*(make(i) for i in range(count)))


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, its children alive, and its children gone (Postgres: the postmaster, its backends,
    and the backends of connections already closed)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def measured_load(
    api: ApiProcess,
    postgres_pid: int,
    token: str,
    path: str,
    duration_s: int,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> dict[str, Any]:
    """The load's numbers, and the CPU the api and Postgres spent per request meanwhile (milliseconds): a cost
    that, unlike requests per second, hardly depends on what else the machine is doing."""
    assert api.proc is not None
    api_before, pg_before, wall_before = _cpu_seconds(api.proc.pid), _tree_cpu_seconds(postgres_pid), time.monotonic()
    result = load(api, token, duration_s, path, headers, script)
    wall = time.monotonic() - wall_before
    api_cpu, pg_cpu = _cpu_seconds(api.proc.pid) - api_before, _tree_cpu_seconds(postgres_pid) - pg_before
    n = max(result["requests"], 1)
    return {
        **result,
        "api_cpu_ms_per_request": round(api_cpu * 1000 / n, 2),
        "postgres_cpu_ms_per_request": round(pg_cpu * 1000 / n, 2),
        "api_cpu_pct": round(api_cpu / wall * 100, 1),
    }


async def serial(url: str, token: str, n: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        for _ in range(n):
            start = time.perf_counter()
            r = await c.get(PATH)
            r.raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
    return times


async def misses(url: str, token: str, n: int) -> list[float]:
    """The GET after a write: the page rebuilt (one application's stop timeout changed each time)."""
    times = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        first = (await c.get(PATH)).json()[0]["id"]
        for i in range(n):
            (await c.patch(f"/v1/applications/{first}", json={"stop_timeout_s": 10 + i % 2})).raise_for_status()
            start = time.perf_counter()
            r = await c.get(PATH)
            r.raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
    return times


async def more_tokens(url: str, token: str, n: int) -> list[str]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        made = []
        for i in range(n):
            r = await c.post("/v1/tokens", json={"name": f"bench-{i}"})
            r.raise_for_status()
            made.append(r.json()["token"])
        return made


def load(
    api: ApiProcess,
    token: str,
    duration_s: int,
    path: str = PATH,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> dict[str, Any]:
    wrk = ensure_wrk()
    if wrk is not None:
        return run_wrk(wrk, f"{api.url}{path}", token, CONCURRENCY, duration_s, headers=headers, script=script)
    return run_python(api.port, path, token, CONCURRENCY, duration_s)


async def run() -> dict[str, Any]:
    async with running_api("api") as (root, infra, api):
        token = api.admin_token()
        started = time.monotonic()
        await seed(api.url, token, APPLICATIONS)
        seed_s = time.monotonic() - started
        serial_ms = await serial(api.url, token, SERIAL_N)
        miss_ms = await misses(api.url, token, MISSES)
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as c:
            page = await c.get(PATH)
            page.raise_for_status()
        load(api, token, WARMUP_S)
        load_before = os.getloadavg()[0]
        postgres = infra.postgres_pid
        result = measured_load(api, postgres, token, PATH, DURATION_S)
        # where the time goes: the same load on a page of one application, on the cheapest route, and on the
        # default page revalidated (304)
        reference = {
            name: {k: measured_load(api, postgres, token, path, REFERENCE_S)[k] for k in REFERENCE_KEYS}
            for name, path in REFERENCES.items()
        }
        if ensure_wrk() is not None:  # the asyncio client cannot read a 304 (no body, no Content-Length)
            revalidated = measured_load(
                api, postgres, token, PATH, REFERENCE_S, {"If-None-Match": page.headers["etag"]}
            )
            reference["not_modified"] = {k: revalidated[k] for k in REFERENCE_KEYS}
            # The token checks of concurrent requests share one statement; with the same token they share
            # the row too. Here each request in flight carries another token.
            script = rotating_tokens(root / "tokens.lua", await more_tokens(api.url, token, TOKENS))
            distinct = measured_load(api, postgres, token, PATH, REFERENCE_S, script=script)
            reference["distinct_tokens"] = {k: distinct[k] for k in REFERENCE_KEYS}
        if not api.alive():
            raise RuntimeError(f"the api died under load:\n{api.log_tail()}")
        return {
            "rps": round(result["rps"], 1),
            "p99_ms": round(result["p99_ms"], 2),
            "p50_ms": round(result["p50_ms"], 2),
            "applications": APPLICATIONS,
            "concurrency": CONCURRENCY,
            "duration_s": result["duration_s"],
            "requests": result["requests"],
            "errors": result["errors"],
            "tool": result["tool"],
            "page_items": len(page.json()),
            "page_bytes": len(page.content),
            "serial_p50_ms": round(statistics.median(serial_ms), 2),
            "miss_p50_ms": round(statistics.median(miss_ms), 2),
            "page_total_count": int(page.headers.get("x-total-count", -1)),
            "api_cpu_pct": result["api_cpu_pct"],
            "api_cpu_ms_per_request": result["api_cpu_ms_per_request"],
            "postgres_cpu_ms_per_request": result["postgres_cpu_ms_per_request"],
            "reference": reference,
            "seed_s": round(seed_s, 1),
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
