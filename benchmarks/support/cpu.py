"""CPU time of the platform's processes: a cost that hardly depends on what else the machine runs.

``PlatformCpu(platform)`` finds the processes ``berth up`` started for one data dir (services by their
console script, nats-server, Traefik, Postgres with its backends) and reads their user + system time;
``sample()`` returns seconds per component, and ``per(before, after, n)`` the milliseconds each spent per
unit of work between two samples. Wall-clock latencies on a shared 2-core machine swing with the load of
other work; CPU per deploy or per route change does not (much), so a change to the code shows in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil

from benchmarks.support.platform import BerthUp
from berth_cli.platform import leftovers

COMPONENTS = (
    "berth-scheduler",
    "berth-proxy-sync",
    "berth-api",
    "berth-builder",
    "berth-metrics",
    "berth-notifier",
    "traefik",
    "nats-server",
)


def _component(cmdline: list[str]) -> str | None:
    text = " ".join(cmdline)
    for name in COMPONENTS:
        if name in text:
            return name.removeprefix("berth-")
    return "postgres" if "postgres" in text else None


@dataclass
class PlatformCpu:
    platform: BerthUp
    procs: dict[str, list[psutil.Process]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in leftovers(self.platform.paths.root):
            try:
                name = _component(p.cmdline())
            except psutil.Error:
                continue
            if name is not None:
                self.procs.setdefault(name, []).append(p)

    def sample(self) -> dict[str, float]:
        """CPU seconds so far per component (Postgres includes its backends, gone ones excepted)."""
        out: dict[str, float] = {}
        for name, procs in self.procs.items():
            total = 0.0
            for p in procs:
                try:
                    family = [p, *(p.children(recursive=True) if name == "postgres" else [])]
                    for q in family:
                        t = q.cpu_times()
                        total += t.user + t.system
                except psutil.Error:
                    continue
            out[name] = total
        return out

    @staticmethod
    def per(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
        """Milliseconds of CPU per unit of work, per component, between two samples."""
        return {k: round((after[k] - before.get(k, 0.0)) * 1000 / max(n, 1), 1) for k in sorted(after)}
