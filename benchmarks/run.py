"""Run the benchmarks and print every result against its goal.

``python -m benchmarks.run [names...]`` imports every ``benchmarks/bench_*.py`` module. Each has ``NAME``,
``GOALS = {"key": ("<=" | ">=", number)}`` and ``run()`` (sync or async) returning a dict. The dict, plus
``goals``, ``measured_at`` and ``machine``, is written to ``benchmarks/results/<NAME>.json``. The table
also shows result files already present whose module was not run this time (marked as not re-run).

A benchmark that raises is reported and the others still run; the exit status is 1 if any failed to
run. A missed goal is reported (MISS) but is not a failure: goals are what we aim at, measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OPS = {"<=": lambda value, goal: value <= goal, ">=": lambda value, goal: value >= goal}


@dataclass
class Bench:
    name: str
    module: ModuleType

    @property
    def goals(self) -> dict[str, tuple[str, float]]:
        return dict(getattr(self.module, "GOALS", {}))


def discover() -> tuple[list[Bench], list[tuple[str, str]]]:
    """Every bench_*.py module; those that fail to import are returned as (module name, error)."""
    benches, broken = [], []
    for path in sorted(HERE.glob("bench_*.py")):
        modname = f"benchmarks.{path.stem}"
        try:
            module = importlib.import_module(modname)
            benches.append(Bench(str(module.NAME), module))
        except Exception as exc:
            broken.append((modname, f"{type(exc).__name__}: {exc}"))
    return benches, broken


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def run_one(bench: Bench) -> dict[str, Any]:
    fn = bench.module.run
    result = asyncio.run(fn()) if inspect.iscoroutinefunction(fn) else fn()
    if not isinstance(result, dict):
        raise TypeError(f"run() of {bench.name} returned {type(result).__name__}, not a dict")
    goals = {key: [op, goal] for key, (op, goal) in bench.goals.items()}
    for key, (op, _) in goals.items():
        if op not in OPS:
            raise ValueError(f"goal of {bench.name}.{key}: unknown comparison {op!r}")
    return {
        **result,
        "goals": goals,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }


def write(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path


def lookup(result: dict[str, Any], key: str) -> Any:
    """A result value; dotted keys reach into nested objects (``processes.nats``)."""
    value: Any = result
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def table_rows(name: str, result: dict[str, Any], note: str = "") -> list[tuple[str, str, str, str, str]]:
    rows = []
    for key, (op, goal) in (result.get("goals") or {}).items():
        value = lookup(result, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and op in OPS:
            verdict = "PASS" if OPS[op](value, goal) else "MISS"
            shown = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        else:
            verdict, shown = "MISS", "missing"
        rows.append((f"{name}.{key}", shown, f"{op} {goal}", verdict, note))
    return rows


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    header = ("result", "value", "goal", "", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmark NAMEs to run (default: all)")
    args = parser.parse_args(argv)
    benches, broken = discover()
    known = {b.name for b in benches}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    failed: list[str] = []
    for modname, error in broken:
        print(f"[{modname}] cannot be imported: {error}", file=sys.stderr)
        failed.append(modname)
    fresh: dict[str, dict[str, Any]] = {}
    for bench in benches:
        if args.names and bench.name not in args.names:
            continue
        print(f"[{bench.name}] running ...", flush=True)
        start = time.monotonic()
        try:
            result = run_one(bench)
        except Exception:
            print(f"[{bench.name}] FAILED after {time.monotonic() - start:.1f}s:", file=sys.stderr)
            traceback.print_exc()
            failed.append(bench.name)
            continue
        path = write(bench.name, result)
        fresh[bench.name] = result
        print(f"[{bench.name}] done in {time.monotonic() - start:.1f}s -> {path.relative_to(HERE.parent)}")
    rows = []
    for path in sorted(RESULTS.glob("*.json")) if RESULTS.is_dir() else []:
        name = path.stem
        if name in fresh:
            rows += table_rows(name, fresh[name])
            continue
        try:
            old = json.loads(path.read_text())
            why = "FAILED now, last result" if name in failed else "not re-run"
            rows += table_rows(name, old, f"({why} from {old.get('measured_at', '?')})")
        except (ValueError, AttributeError) as exc:
            print(f"[{name}] unreadable result file {path.name}: {exc}", file=sys.stderr)
    print()
    if rows:
        print_table(rows)
    else:
        print("no results yet")
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
