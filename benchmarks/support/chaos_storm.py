"""The storm of the chaos suite: kill -9 a Berth service, NATS, Postgres, Traefik or the local Docker engine
at random moments.

The plan (which component, in what order) and the pauses between blows come from one seeded
``random.Random``, so a run is replayed by its seed. Every blow is a SIGKILL of the pid the supervisor's state
file (``<data>/supervisor.json``) names for that child: the six services count as ``kills``, NATS, Postgres
and Traefik (the supervisor starts them again, Traefik from its data-plane watcher) as ``restarts``. After
each blow the storm waits (bounded) until the supervisor reports the component running under a new pid, so
the blows test recovery rather than a component kept down by its growing restart backoff.

``docker`` is the platform's local engine, which no supervisor watches: its blow is ``engine_restart``
(given by the run: the engine of its own the platform was pointed at, ``tests/support/private_engine.py``),
which kills its dockerd -9 once it runs an application's replica and starts a new one on the same data root,
as a host restarts a crashed engine.
It counts as a restart too; its ``back_after_s`` is the seconds until the new engine answered. The
containers the crashed engine ran stay down until Berth starts them again.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICES = ("api", "builder", "scheduler", "proxy-sync", "metrics", "notifier")
INFRA = ("nats", "postgres", "traefik", "docker")
ENGINE = "docker"  # the local Docker engine (``Storm.engine_restart``)
BACK_WITHIN_S = 90.0


def plan(rng: random.Random, kills: int, infra: tuple[str, ...] = INFRA, together: float = 0.3) -> list[list[str]]:
    """The blows, in order, each a list of components struck at once: ``kills`` services drawn at random
    (the scheduler and the builder at least once each when there are two or more kills: they hold
    deployments in flight) and each of ``infra`` once, shuffled; a blow joins the one before it with
    probability ``together`` (two components down at the same moment, e.g. the scheduler and NATS)."""
    must = ["scheduler", "builder"][: max(0, min(kills, 2))]
    drawn = must + [rng.choice(SERVICES) for _ in range(kills - len(must))]
    targets = drawn + list(infra)
    rng.shuffle(targets)
    blows: list[list[str]] = []
    for target in targets:
        if blows and target not in blows[-1] and len(blows[-1]) < 2 and rng.random() < together:
            blows[-1].append(target)
        else:
            blows.append([target])
    return blows


def child_pid(state_path: Path, name: str) -> int | None:
    """The running pid the supervisor reports for child ``name`` (None while it is not running)."""
    try:
        child = json.loads(state_path.read_text())["children"].get(name) or {}
    except (OSError, ValueError, KeyError):
        return None
    pid = child.get("pid")
    return int(pid) if child.get("state") == "running" and pid else None


@dataclass
class Blow:
    at_s: float  # from the storm's start
    target: str
    pid: int | None
    back_after_s: float | None  # None: not seen running again within BACK_WITHIN_S

    def public(self) -> dict[str, Any]:
        return {"at_s": round(self.at_s, 2), "target": self.target, "pid": self.pid, "back_after_s": self.back_after_s}


@dataclass
class Storm:
    """Strikes ``blows`` one after the other, a random pause (``pause_s`` range) before each; the
    components of one blow at the same moment."""

    state_path: Path
    blows: list[list[str]]
    rng: random.Random
    pause_s: tuple[float, float] = (1.0, 6.0)
    # the local engine's crash and restart (blocking; the seconds it took, and the dead dockerd's pid)
    engine_restart: Callable[[], tuple[float, int | None]] | None = None
    done: list[Blow] = field(default_factory=list)
    _t0: float = 0.0

    @property
    def kills(self) -> int:
        return sum(1 for b in self.done if b.target in SERVICES and b.pid is not None)

    @property
    def restarts(self) -> int:
        return sum(1 for b in self.done if b.target in INFRA and b.pid is not None)

    async def run(self, stop: asyncio.Event) -> None:
        self._t0 = time.monotonic()
        for targets in self.blows:
            pause = self.rng.uniform(*self.pause_s)
            try:
                await asyncio.wait_for(stop.wait(), pause)
                return
            except TimeoutError:
                pass
            self.done += await asyncio.gather(*(self.strike(t) for t in targets))

    async def strike(self, target: str) -> Blow:
        if target == ENGINE:
            return await self.restart_engine()
        pid = child_pid(self.state_path, target)
        waited = time.monotonic()
        while pid is None and time.monotonic() - waited < BACK_WITHIN_S:  # down already (e.g. lost its database)
            await asyncio.sleep(0.2)
            pid = child_pid(self.state_path, target)
        at = time.monotonic() - self._t0
        if pid is None:
            print(f"[chaos] {at:7.1f}s {target}: not running, skipped", flush=True)
            return Blow(at, target, None, None)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return Blow(at, target, None, None)
        print(f"[chaos] {at:7.1f}s kill -9 {target} (pid {pid})", flush=True)
        start = time.monotonic()
        while time.monotonic() - start < BACK_WITHIN_S:
            now = child_pid(self.state_path, target)
            if now is not None and now != pid:
                back = round(time.monotonic() - start, 2)
                print(f"[chaos] {time.monotonic() - self._t0:7.1f}s {target} back (pid {now}) in {back}s", flush=True)
                return Blow(at, target, pid, back)
            await asyncio.sleep(0.2)
        print(f"[chaos] {target} not back within {BACK_WITHIN_S}s", flush=True)
        return Blow(at, target, pid, None)

    async def restart_engine(self) -> Blow:
        """The local engine killed -9 and started again (skipped when the run gave no engine of its own)."""
        at = time.monotonic() - self._t0
        if self.engine_restart is None:
            print(f"[chaos] {at:7.1f}s {ENGINE}: no engine of the run's own, skipped", flush=True)
            return Blow(at, ENGINE, None, None)
        print(f"[chaos] {at:7.1f}s kill -9 the local Docker engine (once it runs a replica)", flush=True)
        took, pid = await asyncio.to_thread(self.engine_restart)
        print(
            f"[chaos] {time.monotonic() - self._t0:7.1f}s {ENGINE} back (pid {pid} killed) in {took:.2f}s", flush=True
        )
        return Blow(at, ENGINE, pid, round(took, 2))
