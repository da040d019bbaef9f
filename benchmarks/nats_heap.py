"""Where nats-server's memory goes under a soak-like load: its own heap profile over time.

A nats-server configured as ``berth up`` runs it (``nats_auth.config_text``: users and permissions;
``components.nats_launch``: JetStream on its own store, ``GOGC``), plus its profiling and monitoring ports,
opened here only, for this measurement. Six ``Bus`` connections, one per service with its own identity, hold
the durable consumers the catalogue gives the services (each fetching every second) and answer every query;
then, ``RATE`` times a second for ``DURATION_S`` seconds, a "deploy": one command, ``EVENTS`` events, ``LINES``
log lines on a new ``log.<id>`` subject and 20 queries. Every ``SAMPLE_S`` seconds: the server's RSS, and
every 60 s its heap profile (``/debug/pprof/heap?debug=1``, text: no ``go tool`` needed) reduced to the heap in
use and the part of it in JetStream's block buffers (``getMsgBlockBuf``), with what each stream holds (``/jsz``).

``by_rule`` reads the RSS series as the soak does (``bench_soak``): from the first sample at which the events
and the log lines each hold a block's worth of bytes (``benchmarks.support.stream_blocks``), over four fifths
of the run after it (or to its end), the growth in percent; ``by_time`` from a fifth of the run (the soak's
old warm-up) to the end, for comparison.

    python -m benchmarks.nats_heap [DURATION_S] [RATE]      # JSON on stdout; benchmarks/README.md (soak)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from benchmarks.support.stream_blocks import WARMUP_STREAMS
from berth_cli.components import nats_launch
from berth_cli.nats_auth import config_text
from berth_cli.platform import free_port_base
from berth_common.bus.client import Bus
from berth_common.bus.streams import block_size, default_streams
from berth_common.catalogue import REGISTRY, SERVICES, consumed_by, served_by
from berth_common.envelope import Envelope

EVENTS = int(os.environ.get("BERTH_NATS_HEAP_EVENTS", "25"))
LINES = 60
QUERIES = 20
SAMPLE_S = 10.0
PROFILE_S = float(os.environ.get("BERTH_NATS_HEAP_PROFILE_S", "60"))
_RECORD = re.compile(r"\s*\d+: (\d+) \[\d+: \d+\] @")
_FRAME = re.compile(r"#\s+0x[0-9a-f]+\s+(\S+)")


class _Answer(BaseModel):
    ok: int = 1


def heap_in_use(profile: str) -> dict[str, float]:
    """The heap in use (MB, as the profile estimates it) and how much of it JetStream's block buffers hold."""
    total = buffers = 0
    size, frames = 0, []
    for line in [*profile.splitlines(), "0: 0 [0: 0] @"]:
        if m := _RECORD.match(line):
            total += size
            buffers += size if any("getMsgBlockBuf" in f for f in frames) else 0
            size, frames = int(m.group(1)), []
        elif m := _FRAME.match(line):
            frames.append(m.group(1))
    return {"heap_in_use_mb": round(total / 1e6, 2), "block_buffers_mb": round(buffers / 1e6, 2)}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _stream_bytes(monitor: str) -> dict[str, int]:
    jsz = json.loads(_get(f"{monitor}/jsz?streams=1"))
    return {
        s["name"]: int(s["state"]["bytes"])
        for account in jsz.get("account_details", [])
        for s in account.get("stream_detail", [])
    }


def growth(samples: list[dict[str, Any]], start_s: float | None, span_s: float) -> dict[str, Any] | None:
    """The RSS growth (percent) from the first sample at or after ``start_s`` to the last at or before
    ``start_s + span_s``; None without a start or without two samples."""
    if start_s is None:
        return None
    inside = [p for p in samples if start_s <= p["t_s"] <= start_s + span_s]
    if len(inside) < 2:
        return None
    first, last = inside[0], inside[-1]
    return {
        "from_s": first["t_s"],
        "to_s": last["t_s"],
        "rss_mb": [first["rss_mb"], last["rss_mb"]],
        "growth_pct": round((last["rss_mb"] - first["rss_mb"]) / first["rss_mb"] * 100, 1),
    }


def _profile(monitor: str, prof: str) -> dict[str, Any]:
    jsz = json.loads(_get(f"{monitor}/jsz?streams=1"))
    streams = {
        s["name"]: {"messages": s["state"]["messages"], "mb": round(s["state"]["bytes"] / 1e6, 2)}
        for account in jsz.get("account_details", [])
        for s in account.get("stream_detail", [])
    }
    return {**heap_in_use(_get(f"{prof}/debug/pprof/heap?debug=1").decode()), "streams": streams}


async def _load(url: str, passwords: dict[str, str], duration_s: float, rate: float, pid: int, ports: list[int]) -> Any:
    monitor, prof = f"http://127.0.0.1:{ports[1]}", f"http://127.0.0.1:{ports[2]}"
    buses = {s: Bus(s, url, user=s, password=passwords[s]) for s in SERVICES}
    for bus in buses.values():
        await bus.connect()

    async def handled(data: Any, delivery: Any) -> None:
        return None

    async def answer(data: dict[str, Any]) -> BaseModel:
        return _Answer()

    for service, bus in buses.items():
        for model in consumed_by(service):
            if model.TYPE != "evt.log.line":  # read by ephemeral consumers only
                await bus.consume(model.TYPE, handled)
        for model in served_by(service):
            await bus.serve(model.TYPE.removeprefix("rpc."), answer)
    queries = [(server, m) for server in SERVICES for m in served_by(server) if m.PRODUCERS and m.PRODUCERS[0] in buses]
    families = ("deployment", "route", "container", "build")
    sent = {
        kind: [
            m
            for m in REGISTRY.values()
            if m.KIND == kind and m.CONSUMERS and m.PRODUCERS and m.PRODUCERS[0] in buses
            if m.TYPE != "evt.log.line" and m.TYPE.split(".")[1] in families
        ]
        for kind in ("command", "event")
    }

    async def publish(producer: str, subject: str, data: dict[str, Any], msg_id: str) -> None:
        env = Envelope(source=f"berth/{producer}", type="bench.load", data=data)  # no consumer parses it as a model
        await buses[producer].publish_envelope(subject, env, {"Nats-Msg-Id": msg_id})

    start = time.monotonic()
    samples: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    deploys = 0
    while (now := time.monotonic()) - start < duration_s:
        dep = str(uuid.uuid4())
        cmd = sent["command"][deploys % len(sent["command"])]
        await publish(cmd.PRODUCERS[0], cmd.TYPE, {"deployment_id": dep, "pad": "y" * 400}, f"cmd-{dep}")
        for i in range(EVENTS):
            evt = sent["event"][(deploys * EVENTS + i) % len(sent["event"])]
            await publish(evt.PRODUCERS[0], evt.TYPE, {"deployment_id": dep, "pad": "y" * 400}, f"evt-{dep}-{i}")
        for i in range(LINES):
            await publish("scheduler", f"log.{dep}", {"line": "x" * 120, "seq": i}, f"log-{dep}-{i}")
        for i in range(QUERIES):
            server, model = queries[i % len(queries)]
            query = Envelope(source="berth/bench", type="bench.query", data={}).to_bytes()
            await buses[model.PRODUCERS[0]].nc.request(
                f"rpc.{server}.{model.TYPE.removeprefix('rpc.')}", query, timeout=5
            )
        deploys += 1
        t = time.monotonic() - start
        if t >= len(samples) * SAMPLE_S:
            stored = _stream_bytes(monitor)
            samples.append({"t_s": round(t), "rss_mb": _rss_mb(pid), "deploys": deploys, "stored_bytes": stored})
        if t >= (len(profiles) + 1) * PROFILE_S:
            profiles.append({"t_s": round(t), **_profile(monitor, prof)})
        await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - now)))
    for bus in buses.values():
        await bus.close(5)
    blocks = {spec.name: block_size(spec.config()) or 0 for spec in default_streams()}
    filled = [p for p in samples if all(p["stored_bytes"].get(n, 0) >= blocks[n] for n in WARMUP_STREAMS)]
    rule_s = filled[0]["t_s"] if filled else None
    span = duration_s * 4 / 5  # the soak's measured time, as a part of the run
    by_rule, by_time = growth(samples, rule_s, span), growth(samples, duration_s / 5, span)
    return {
        "deploys": deploys,
        "rule_met_s": rule_s,
        "by_rule": by_rule,
        "by_time": by_time,
        "rss_series": samples,
        "profiles": profiles,
    }


def run(duration_s: float, rate: float) -> dict[str, Any]:
    base = free_port_base(3)
    ports = [base, base + 1, base + 2]  # client, monitoring, profiling
    with tempfile.TemporaryDirectory(prefix="berth-nats-heap-") as tmp:
        root = Path(tmp)
        passwords = {identity: uuid.uuid4().hex for identity in (*SERVICES, "operator", "observer", "admin")}
        config = json.loads(config_text(passwords, None, uuid.uuid4().hex))
        config.update({"http_port": ports[1], "prof_port": ports[2]})  # this measurement only
        (root / "nats.conf").write_text(json.dumps(config))
        launch = nats_launch(root, ports[0], config=root / "nats.conf")
        with (root / "nats.log").open("w") as out:
            proc = subprocess.Popen(launch.argv, env={**os.environ, **launch.env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):
                try:
                    _get(f"http://127.0.0.1:{ports[1]}/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            url = f"nats://127.0.0.1:{ports[0]}"
            result = asyncio.run(_load(url, passwords, duration_s, rate, proc.pid, ports))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"duration_s": duration_s, "rate": rate, "events": EVENTS, "lines": LINES, **result}


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:3]]
    print(json.dumps(run(*(args + [300.0, 4.0][len(args) :])), indent=2))
