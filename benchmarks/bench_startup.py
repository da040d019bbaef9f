"""What a user waits for on every ``berth`` call, and on ``berth up`` and ``berth down``.

The CLI alone (no platform): importing ``berth_cli.main`` and building the command (best of 5 fresh
interpreters), ``berth --help`` and a no-op ``berth down`` (best of 3). Then the split platform as a user
runs it: ``berth up`` on a fresh temporary data dir and a free port range until it returns (every component
ready), with the supervisor's own timeline (postgres ready, roles provisioned and schemas migrated,
every service ready), ``berth down`` (and how long it took before the supervisor got its signal), a second
``berth up`` on the same data dir (schemas at head), and ``berth down --all`` (checked: nothing left).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from berth_cli import components
from berth_cli.layout import Paths
from berth_cli.platform import free_port_base, leftovers

NAME = "startup"
GOALS = {
    "cli_import_s": ("<=", 0.3),
    "down_noop_s": ("<=", 0.8),
    "up_fresh_s": ("<=", 20.0),
    "down_s": ("<=", 5.0),
}
IMPORT = (
    "import time; t = time.perf_counter(); import berth_cli.main, typer.main; "
    "typer.main.get_command(berth_cli.main.app); print(time.perf_counter() - t)"
)
EVENTS = {
    "supervisor starting": "supervisor_start",
    "postgres ready": "pg_ready",
    "database roles provisioned": "provisioned",
    "platform ready": "ready",
    "stopping": "stopping",
}


def _env(base: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env["BERTH_PORT_BASE"] = str(base)
    return env


def _timed(argv: list[str], env: dict[str, str], timeout: float = 300) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return took, proc.stdout


def _timeline(log: Path) -> dict[str, datetime]:
    """When the supervisor logged each of :data:`EVENTS` (the last time it did)."""
    found = {}
    for line in log.read_text().splitlines():
        m = re.match(r"(\S+Z) \[\w+\s*\] (.+?)(\s{2,}|$)", line)
        if m and m.group(2).strip() in EVENTS:
            found[EVENTS[m.group(2).strip()]] = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
    return found


def _up(berth: str, env: dict[str, str], paths: Paths) -> dict[str, float]:
    """``berth up`` until it returns, and the supervisor's timeline."""
    start = datetime.now().astimezone()
    took, _ = _timed([berth, "up", "--data-dir", str(paths.root)], env)
    t = _timeline(paths.log("supervisor"))
    return {
        "s": round(took, 2),
        "cli_to_supervisor_s": round((t["supervisor_start"] - start).total_seconds(), 2),
        "postgres_s": round((t["pg_ready"] - t["supervisor_start"]).total_seconds(), 2),
        "provision_migrate_s": round((t["provisioned"] - t["pg_ready"]).total_seconds(), 2),
        "services_ready_s": round((t["ready"] - t["provisioned"]).total_seconds(), 2),
    }


def run() -> dict[str, Any]:
    result: dict[str, Any] = {"load_avg_1m": [round(os.getloadavg()[0], 1)]}
    imports = [float(_timed([sys.executable, "-c", IMPORT], dict(os.environ))[1]) for _ in range(5)]
    result["cli_import_s"] = round(min(imports), 3)
    root = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    root.chmod(0o755)
    paths = Paths(root / "data")
    env = _env(free_port_base())
    berth = components.bin_path("berth")
    where = ["--data-dir", str(paths.root)]
    try:
        result["help_s"] = round(min(_timed([berth, "--help"], env)[0] for _ in range(3)), 3)
        result["down_noop_s"] = round(min(_timed([berth, "down", *where], env)[0] for _ in range(3)), 3)
        shutil.rmtree(paths.root, ignore_errors=True)
        fresh = _up(berth, env, paths)
        result.update({"up_fresh_s" if k == "s" else f"up_fresh_{k}": v for k, v in fresh.items()})
        start = datetime.now().astimezone()
        result["down_s"] = round(_timed([berth, "down", *where], env)[0], 2)
        stopping = _timeline(paths.log("supervisor"))["stopping"]
        result["down_to_signal_s"] = round((stopping - start).total_seconds(), 2)
        again = _up(berth, env, paths)
        result.update({"up_again_s" if k == "s" else f"up_again_{k}": v for k, v in again.items()})
    finally:
        subprocess.run([berth, "down", "--all", *where], env=env, capture_output=True, timeout=300)
        stray = leftovers(paths.root)
        for p in stray:
            p.kill()
        shutil.rmtree(root, ignore_errors=True)
    if stray:
        raise RuntimeError(f"berth down left processes behind: {[p.pid for p in stray]}")
    result["load_avg_1m"].append(round(os.getloadavg()[0], 1))
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
