"""Commands on a real nats-server through the real ``Bus.consume`` path (no database).

- latency: one command at a time to an idle consumer (the usual control-plane traffic), from the moment
  ``publish`` is called to the moment the handler starts: p50 / p99 in milliseconds;
- throughput: a backlog of commands (published while the service was down) drained by one consumer,
  messages per second from its start to the last handler start; median of five backlogs;
- burst: commands published back to back while the consumer works (both in this one process);
- baseline: the same measures with bare nats-py (publish, fetch, ack) in the same run, so the Bus's own
  cost shows as a ratio that does not depend on how busy the machine is.

Bounded: a few thousand messages, well under a minute. The server is started from the project's
launcher in a temporary directory and stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.support.processes import wait_port
from berth_cli import components

NAME = "bus"
GOALS = {
    "p50_ms": ("<=", 5.0),
    "p99_ms": ("<=", 50.0),
    "msgs_per_s": (">=", 1000.0),
    "msgs_per_s_vs_bare": (">=", 0.4),
}
WARMUP_N = 50
LATENCY_N = 500
BACKLOG_N = 1500
BACKLOGS = 5
BURST_N = 3000
PHASE_LIMIT_S = 30.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Path_:
    """One way of moving a command from a publisher to a handler: Berth's Bus, or bare nats-py."""

    started: dict[str, float]
    arrived: asyncio.Event

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, nonce: str) -> None: ...
    async def close(self) -> None: ...


class BusPath(Path_):
    def __init__(self, url: str) -> None:
        from berth_common.bus import Bus

        self.producer, self.worker = Bus("bench-api", url), Bus("bench-scheduler", url)
        self.started, self.arrived = {}, asyncio.Event()
        self.consumer: Any = None

    async def connect(self) -> None:
        await self.producer.connect()
        await self.worker.connect()

    async def start(self) -> None:
        from berth_common.bus import Delivery
        from berth_common.catalogue import PingService

        async def handler(msg: PingService, delivery: Delivery) -> None:
            self.started[msg.nonce] = time.perf_counter()
            self.arrived.set()

        self.consumer = await self.worker.consume(PingService, handler)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def publish(self, nonce: str) -> None:
        from berth_common.catalogue import PingService

        await self.producer.publish(PingService(nonce=nonce))

    async def close(self) -> None:
        await self.worker.close()
        await self.producer.close()


class BarePath(Path_):
    """nats-py alone, on its own work-queue stream: publish with a message id, fetch 10, ack_sync."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.started, self.arrived = {}, asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    async def connect(self) -> None:
        import nats
        from nats.js.api import RetentionPolicy, StreamConfig

        self.pnc, self.cnc = await nats.connect(self.url), await nats.connect(self.url)
        self.pjs, self.cjs = self.pnc.jetstream(), self.cnc.jetstream()
        await self.pjs.add_stream(StreamConfig(name="BARE", subjects=["bare.>"], retention=RetentionPolicy.WORK_QUEUE))

    async def start(self) -> None:
        from nats.errors import TimeoutError as NatsTimeoutError
        from nats.js.api import AckPolicy, ConsumerConfig

        cfg = ConsumerConfig(durable_name="bare", ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
        sub = await self.cjs.pull_subscribe("bare.cmd", durable="bare", stream="BARE", config=cfg)
        self.stopping = False

        async def loop() -> None:
            while not self.stopping:
                try:
                    msgs = await sub.fetch(10, timeout=1.0)
                except (NatsTimeoutError, TimeoutError):
                    continue
                for msg in msgs:
                    self.started[msg.data.decode()] = time.perf_counter()
                    self.arrived.set()
                    await msg.ack_sync()
            await sub.unsubscribe()

        self.task = asyncio.create_task(loop())

    async def stop(self) -> None:
        self.stopping = True
        if self.task is not None:
            await self.task

    async def publish(self, nonce: str) -> None:
        await self.pjs.publish("bare.cmd", nonce.encode(), headers={"Nats-Msg-Id": nonce})

    async def close(self) -> None:
        await self.stop()
        await self.cnc.close()
        await self.pnc.close()


async def _wait_handled(path: Path_, nonces: list[str]) -> None:
    deadline = time.monotonic() + PHASE_LIMIT_S
    while any(n not in path.started for n in nonces):
        if time.monotonic() > deadline:
            missing = sum(1 for n in nonces if n not in path.started)
            raise TimeoutError(f"{missing} of {len(nonces)} messages not handled within {PHASE_LIMIT_S}s")
        await asyncio.sleep(0.005)


async def _one_at_a_time(path: Path_, prefix: str, n: int) -> list[float]:
    latencies = []
    for i in range(n):
        nonce = f"{prefix}{i}"
        path.arrived.clear()
        sent = time.perf_counter()
        await path.publish(nonce)
        while nonce not in path.started:
            await asyncio.wait_for(path.arrived.wait(), PHASE_LIMIT_S)
            path.arrived.clear()
        latencies.append((path.started[nonce] - sent) * 1000)
        await asyncio.sleep(0.002)  # idle again before the next one
    return latencies


async def _backlog_rate(path: Path_, prefix: str) -> float:
    """Publish a backlog with the consumer stopped, then time how fast it drains."""
    await path.stop()
    nonces = [f"{prefix}{i}" for i in range(BACKLOG_N)]
    for nonce in nonces:
        await path.publish(nonce)
    t0 = time.perf_counter()
    await path.start()
    await _wait_handled(path, nonces)
    return BACKLOG_N / (max(path.started[n] for n in nonces) - t0)


async def _burst(path: Path_) -> dict[str, float]:
    nonces = [f"t{i}" for i in range(BURST_N)]
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    for nonce in nonces:
        sent[nonce] = time.perf_counter()
        await path.publish(nonce)
    publish_s = time.perf_counter() - t0
    await _wait_handled(path, nonces)
    latencies = [(path.started[n] - sent[n]) * 1000 for n in nonces]
    return {
        "publish_per_s": round(BURST_N / publish_s, 1),
        "msgs_per_s": round(BURST_N / (max(path.started[n] for n in nonces) - t0), 1),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(_pct(latencies, 99), 3),
    }


async def _run_on(url: str) -> dict[str, Any]:
    """Both paths on one server, their phases interleaved so that load from elsewhere hits both alike."""
    load_before = os.getloadavg()[0]
    paths: dict[str, Any] = {"bus": BusPath(url), "bare": BarePath(url)}
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    rates: dict[str, list[float]] = {name: [] for name in paths}
    bursts: dict[str, dict[str, float]] = {}
    for path in paths.values():
        await path.connect()
        await path.start()
        await _one_at_a_time(path, "w", WARMUP_N)
    try:
        chunk = 50
        for k in range(LATENCY_N // chunk):
            for name, path in paths.items():
                latencies[name] += await _one_at_a_time(path, f"l{k}-", chunk)
        for k in range(BACKLOGS):
            for name, path in paths.items():
                rates[name].append(await _backlog_rate(path, f"b{k}-"))
        for name, path in paths.items():
            bursts[name] = await _burst(path)
    finally:
        for path in paths.values():
            await path.close()
    summary = {
        name: {
            "p50_ms": round(statistics.median(latencies[name]), 3),
            "p99_ms": round(_pct(latencies[name], 99), 3),
            "max_ms": round(max(latencies[name]), 3),
            "msgs_per_s": round(statistics.median(rates[name]), 1),
            "best_msgs_per_s": round(max(rates[name]), 1),
            "backlog_rates": [round(r, 1) for r in rates[name]],
            "burst": bursts[name],
        }
        for name in paths
    }
    bus, bare = summary["bus"], summary["bare"]
    return {
        **bus,
        "latency_samples": len(latencies["bus"]),
        "backlog_messages": BACKLOG_N,
        "bare": bare,
        "p50_vs_bare": round(bus["p50_ms"] / bare["p50_ms"], 2),
        # best against best: other load only ever slows a run down, so the fastest runs compare the code
        "msgs_per_s_vs_bare": round(bus["best_msgs_per_s"] / bare["best_msgs_per_s"], 2),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _cpu_s_and_peak_mb(pid: int) -> tuple[float, float]:
    """The process's CPU time so far (user + system, seconds) and its peak resident memory (MiB)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return cpu_s, int(hwm.split()[1]) / 1024


async def _on_server(gogc: str) -> dict[str, Any]:
    """The measures on a nats-server started by the project's launcher with ``GOGC=gogc``, plus the server's
    own CPU seconds and peak memory over the same work."""
    with tempfile.TemporaryDirectory(prefix="berth-bench-bus-") as tmp:
        port = components.free_port()
        launch = components.nats_launch(Path(tmp), port)
        env = {**os.environ, **launch.env, "GOGC": gogc}
        with (Path(tmp) / "nats.log").open("wb") as log:
            proc = subprocess.Popen(launch.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
            try:
                wait_port(port, timeout=20.0)
                result = await _run_on(f"nats://127.0.0.1:{port}")
                cpu_s, peak_mb = _cpu_s_and_peak_mb(proc.pid)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return {**result, "nats_cpu_s": round(cpu_s, 3), "nats_peak_mb": round(peak_mb, 1)}


async def run() -> dict[str, Any]:
    """Berth's setting (``components.NATS_GOGC``) measured, then the Go default (100) on the same work: the
    CPU and memory that the lower ``GOGC`` costs or saves, as ratios."""
    result = await _on_server(components.NATS_GOGC)
    default = await _on_server("100")
    version = subprocess.run([components.bin_path("nats-server"), "--version"], capture_output=True, text=True)
    return {
        **result,
        "nats_gogc": components.NATS_GOGC,
        "gogc_default": {k: default[k] for k in ("nats_cpu_s", "nats_peak_mb", "msgs_per_s", "p50_ms")},
        "nats_cpu_vs_gogc_default": round(result["nats_cpu_s"] / max(default["nats_cpu_s"], 0.001), 3),
        "nats_peak_mb_vs_gogc_default": round(result["nats_peak_mb"] / max(default["nats_peak_mb"], 0.1), 3),
        "nats_server": version.stdout.strip(),
        "handler": "no-op; Bus.consume: sequential, batch of 10, ack_sync after the handler",
    }
