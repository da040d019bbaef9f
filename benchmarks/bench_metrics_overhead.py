"""CPU and memory of the metrics service collecting from 100 idle containers every 10 s.

Starts nats-server and Postgres from the project's launchers in a temporary directory, 100 idle busybox
containers (``sleep``, labelled as 10 apps), and the metrics service as its own process (the
``berth-metrics`` console script, as in split mode). After a warm-up of two collections, the service
process is measured with psutil for about 60 s: ``cpu_pct`` is its CPU time (user + system) over the
wall time, in percent of one core; ``rss_mb`` is the largest resident set seen (sampled each second).
``rss_floor_mb`` is the resident set of a process that only imports the service (the shared runtime:
pydantic, SQLAlchemy, asyncpg, nats, structlog, prometheus_client, cryptography), measured in the same
run, and ``rss_mb_over_floor`` what running and collecting add to it (negative: the service hands freed
heap back after each collection, which a process that only imported does not). ``rss_anon_mb`` and
``rss_file_mb`` split the service's resident set at the end (``/proc/<pid>/smaps_rollup``): its own
memory, and the pages of shared libraries and extension modules it maps (libpython, pydantic-core,
cryptography's and OpenSSL's libraries...).
The Prometheus endpoint of the service is read at the end to check that it really read every container
(``collected``) and how long one collection takes (``collect_s_mean``). Everything is removed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from benchmarks.support.processes import start as _start
from benchmarks.support.processes import stop as _stop
from benchmarks.support.processes import wait_port as _wait_port
from berth_cli import baseimages, components
from berth_common.scrape import team_token

NAME = "metrics_overhead"
GOALS = {"cpu_pct": ("<=", 5.0), "rss_mb": ("<=", 80.0)}
CONTAINERS = 100
INTERVAL_S = 10.0
MEASURE_S = 60.0
WARMUP_CYCLES = 2
DOCKER = baseimages.DOCKER
MB = 1024 * 1024


def _start_containers(tag: str) -> list[str]:
    image = baseimages.BUSYBOX_IMAGE
    baseimages.ensure_base_images([image])

    def one(i: int) -> str:
        argv = [DOCKER, "run", "-d", "--name", f"berth-bench-{tag}-{i}", "--label", f"berth.bench={tag}"]
        argv += ["--label", f"berth.app=bench-app-{i % 10}", "--label", "berth.team=bench", image, "sleep", "3600"]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout.strip()

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(CONTAINERS)))


def _remove_containers(ids: list[str]) -> None:
    for start in range(0, len(ids), 25):
        subprocess.run([DOCKER, "rm", "-f", *ids[start : start + 25]], capture_output=True, timeout=300, check=False)


SCRAPE_TOKEN = "bench-scrape-token"  # the platform's; the containers' series come with the bench team's


def _scrape(port: int, token: str = SCRAPE_TOKEN) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # loopback only
        return str(resp.read().decode())


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the metrics service exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the metrics service did not get ready")


def _collections(text: str) -> tuple[float, float]:
    """(count, sum of seconds) of the collection histogram."""
    count = re.search(r"^berth_metrics_collect_seconds_count (\S+)$", text, re.M)
    total = re.search(r"^berth_metrics_collect_seconds_sum (\S+)$", text, re.M)
    return (float(count.group(1)) if count else 0.0), (float(total.group(1)) if total else 0.0)


def _floor_rss_mb() -> float:
    """RSS of a process that only imports the service (the shared runtime every Berth service loads)."""
    code = "import berth_metrics.bootstrap, sys; sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"
    proc = subprocess.Popen([components.bin_path("python"), "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        return float(psutil.Process(proc.pid).memory_info().rss / MB)
    finally:
        proc.kill()
        proc.wait()


def _smaps_rollup_mb(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return out


def run() -> dict[str, Any]:
    from berth_common.db.provision import provision

    tmp = Path(tempfile.mkdtemp(prefix="berth-bench-metrics-"))
    tmp.chmod(0o755)  # Postgres runs as its own user when we are root
    tag = uuid.uuid4().hex[:8]
    nats = pg = service = None
    ids: list[str] = []
    try:
        nats_port, pg_port, http_port = components.free_port(), components.free_port(), components.free_port()
        nats = _start(components.nats_launch(tmp / "nats", nats_port), tmp / "nats.log")
        pg = _start(components.pg_launch(tmp / "pg", pg_port, "bench-pw", shared_buffers="32MB"), tmp / "pg.log")
        _wait_port(nats_port)
        _wait_port(pg_port)
        urls = asyncio.run(provision(components.pg_admin_url(pg_port, "bench-pw"), "bench-secret", ("metrics",)))
        floor = _floor_rss_mb()
        ids = _start_containers(tag)

        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        env |= {
            "BERTH_ENV": "test",
            "BERTH_LOG_LEVEL": "WARNING",
            "BERTH_NATS_URL": f"nats://127.0.0.1:{nats_port}",
            "BERTH_DATABASE_URL": urls["metrics"],
            "BERTH_HTTP_PORT": str(http_port),
            "BERTH_METRICS_INTERVAL_S": str(INTERVAL_S),
            "BERTH_METRICS_TOKEN": SCRAPE_TOKEN,
        }
        argv = [components.bin_path("berth-metrics")]
        with (tmp / "metrics.log").open("ab") as out:
            service = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        _wait_ready(http_port, service)
        while _collections(_scrape(http_port))[0] < WARMUP_CYCLES:
            time.sleep(0.5)

        proc = psutil.Process(service.pid)
        engine = next((p for p in psutil.process_iter(["name"]) if p.info["name"] == "dockerd"), None)
        engine0 = engine.cpu_times() if engine else None
        load_before = os.getloadavg()[0]
        count0, sum0 = _collections(_scrape(http_port))
        cpu0, t0 = proc.cpu_times(), time.monotonic()
        rss = []
        while time.monotonic() - t0 < MEASURE_S:
            rss.append(proc.memory_info().rss)
            time.sleep(1.0)
        cpu1, t1 = proc.cpu_times(), time.monotonic()
        engine1 = engine.cpu_times() if engine else None
        split = _smaps_rollup_mb(service.pid)
        count1, sum1 = _collections(_scrape(http_port))
        text = _scrape(http_port, team_token(SCRAPE_TOKEN, "bench"))
        busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        collected = len([line for line in text.splitlines() if line.startswith("berth_container_memory_used_bytes{")
                         and 'team="bench"' in line])  # fmt: skip
        if collected < CONTAINERS:
            raise RuntimeError(f"the service read {collected} of the {CONTAINERS} containers")
        return {
            "cpu_pct": round(busy / (t1 - t0) * 100.0, 2),
            "rss_mb": round(max(rss) / MB, 1),
            "rss_mb_mean": round(sum(rss) / len(rss) / MB, 1),
            "rss_floor_mb": round(floor, 1),
            "rss_mb_over_floor": round(max(rss) / MB - floor, 1),
            "rss_anon_mb": round(split["Anonymous"], 1),
            "rss_file_mb": round(split["Rss"] - split["Anonymous"], 1),
            "containers": CONTAINERS,
            "collected": collected,
            "interval_s": INTERVAL_S,
            "measured_s": round(t1 - t0, 1),
            "collections": int(count1 - count0),
            "collect_s_mean": round((sum1 - sum0) / (count1 - count0), 3) if count1 > count0 else None,
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            # context, no goal: the engine works for the stats too (and for whatever else runs on the machine)
            "dockerd_cpu_pct": round(
                ((engine1.user + engine1.system) - (engine0.user + engine0.system)) / (t1 - t0) * 100, 2
            )
            if engine0 and engine1
            else None,
        }
    finally:
        _stop(service)
        _remove_containers(ids)
        _stop(pg, 2)
        _stop(nats)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(run())
