"""Idle memory of the whole local platform, split (six service processes) and all-in-one (one).

For each mode: ``berth up`` on a temporary data dir and a free port range, ~10 s idle, then the memory
of every process of the supervisor's tree (psutil), then ``berth down`` (checked: nothing left).

Per component (the supervisor, postgres, nats, traefik, each service or the all-in-one process):
``rss`` of its main process plus the *unique* memory (USS) of its helper processes, so that memory a
program shares between its own processes (Postgres's shared buffers and binary in every backend) is
counted once. ``total_mb_*`` is the sum of those. Also reported: ``rss_sum_mb_*`` (every process's RSS
added up, which counts Postgres's shared memory once per backend) and ``pss_mb_*`` (proportional set
size; pages shared with processes outside the platform, e.g. another Traefik, lower it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from berth_cli import components
from berth_cli.layout import Paths
from berth_cli.platform import free_port_base, leftovers

NAME = "footprint"
GOALS = {"total_mb_all_in_one": ("<=", 300.0)}
IDLE_S = 10.0
MB = 1024 * 1024


def _env(base: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env["BERTH_PORT_BASE"] = str(base)
    return env


def _berth(paths: Paths, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    argv = [components.bin_path("berth"), *args, "--data-dir", str(paths.root)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def measure_tree(state: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Memory per component of a running platform (from its supervisor.json)."""
    supervisor = psutil.Process(state["pid"])
    owners = {c["pid"]: name for name, c in state["children"].items() if c.get("pid")}
    groups: dict[str, list[psutil.Process]] = {"supervisor": [supervisor]}
    for proc in supervisor.children(recursive=True):
        owner, cur = None, proc
        while owner is None and cur is not None and cur.pid != supervisor.pid:
            owner = owners.get(cur.pid)
            cur = cur.parent()
        groups.setdefault(owner or proc.name(), []).append(proc)
    out = {}
    for name, procs in groups.items():
        main = next((p for p in procs if p.pid == supervisor.pid or p.pid in owners), procs[0])
        rss = pss = uss_helpers = naive = 0.0
        for p in procs:
            info = p.memory_full_info()
            naive += info.rss
            pss += info.pss
            if p.pid == main.pid:
                rss = info.rss
            else:
                uss_helpers += info.uss
        out[name] = {
            "mb": round((rss + uss_helpers) / MB, 1),
            "rss_sum_mb": round(naive / MB, 1),
            "pss_mb": round(pss / MB, 1),
            "processes": len(procs),
        }
    return out


def measure_mode(all_in_one: bool, idle_s: float = IDLE_S) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    root.chmod(0o755)
    paths = Paths(root / "data")
    env = _env(free_port_base())
    try:
        start = time.monotonic()
        up = _berth(paths, env, "up", *(["--all-in-one"] if all_in_one else []))
        if up.returncode != 0:
            raise RuntimeError(f"berth up failed:\n{up.stdout}\n{up.stderr}")
        up_s = time.monotonic() - start
        time.sleep(idle_s)
        status = _berth(paths, env, "status", timeout=60)
        if status.returncode != 0:
            raise RuntimeError(f"not healthy after {idle_s}s idle:\n{status.stdout}")
        components_mb = measure_tree(json.loads(paths.state.read_text()))
    finally:
        _berth(paths, env, "down", "--all")
        stray = leftovers(paths.root)
        for p in stray:
            p.kill()
        shutil.rmtree(root, ignore_errors=True)
    if stray:
        raise RuntimeError(f"berth down left processes behind: {[p.pid for p in stray]}")
    return {"up_s": round(up_s, 1), "components": components_mb}


def run() -> dict[str, Any]:
    result: dict[str, Any] = {"idle_s": IDLE_S, "processes": {}, "process_counts": {}}
    for key, all_in_one in (("all_in_one", True), ("split", False)):
        mode = measure_mode(all_in_one)
        comps = mode["components"]
        result[f"total_mb_{key}"] = round(sum(c["mb"] for c in comps.values()), 1)
        result[f"rss_sum_mb_{key}"] = round(sum(c["rss_sum_mb"] for c in comps.values()), 1)
        result[f"pss_mb_{key}"] = round(sum(c["pss_mb"] for c in comps.values()), 1)
        result[f"up_s_{key}"] = mode["up_s"]
        for name, c in comps.items():
            result["processes"][f"{key}/{name}"] = c["mb"]
            result["process_counts"][f"{key}/{name}"] = c["processes"]
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
