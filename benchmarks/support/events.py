"""Every event the platform publishes (``evt.>``), as it arrives, with the time it was made.

An envelope's ``time`` is set when the emitting service stages it, inside the transaction of the state
change, so on one machine it places each step of a deployment on the benchmark's wall clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nats

TERMINAL = ("evt.deployment.succeeded", "evt.deployment.failed", "evt.deployment.cancelled")


@dataclass
class Event:
    type: str
    data: dict[str, Any]
    made: float  # wall clock (envelope time)
    received: float  # wall clock


@dataclass
class EventLog:
    nats_url: str
    subjects: tuple[str, ...] = ("evt.>",)
    events: list[Event] = field(default_factory=list)
    _nc: Any = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> EventLog:
        self._nc = await nats.connect(self.nats_url)

        async def on_msg(msg: Any) -> None:
            env = json.loads(msg.data)
            made = datetime.fromisoformat(env["time"].replace("Z", "+00:00")).timestamp()
            async with self._changed:
                self.events.append(Event(env["type"], env["data"], made, time.time()))
                self._changed.notify_all()

        for subject in self.subjects:
            await self._nc.subscribe(subject, cb=on_msg)
        await self._nc.flush()
        return self

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()

    def of(self, deployment_id: str) -> list[Event]:
        return [e for e in self.events if e.data.get("deployment_id") == deployment_id]

    async def wait_for(self, pick: Any, timeout: float) -> Event:
        """The first event for which ``pick(event)`` is true (waiting up to ``timeout`` seconds)."""

        def found() -> Event | None:
            return next((e for e in self.events if pick(e)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        event = found()
        assert event is not None
        return event

    async def finished(self, deployment_id: str, timeout: float = 120.0) -> Event:
        """The deployment's terminal event; raises when it did not succeed."""
        try:
            e = await self.wait_for(
                lambda e: e.type in TERMINAL and e.data.get("deployment_id") == deployment_id, timeout
            )
        except TimeoutError:
            steps = [(e.type, e.data.get("state"), e.data.get("step")) for e in self.of(deployment_id)]
            raise TimeoutError(f"deployment {deployment_id} did not finish within {timeout}s: {steps}") from None
        if e.type != "evt.deployment.succeeded":
            raise RuntimeError(f"deployment {deployment_id}: {e.type}: {e.data.get('reason')}")
        return e

    def steps(self, deployment_id: str, since: float) -> dict[str, float]:
        """Seconds from ``since`` (wall clock) to each progress step of the deployment (first occurrence),
        plus ``route applied`` (proxy-sync's confirmation of the route's first change)."""
        out: dict[str, float] = {}
        for e in self.of(deployment_id):
            if e.type == "evt.deployment.progressed":
                out.setdefault(str(e.data["step"]), round(e.made - since, 4))
        return out
