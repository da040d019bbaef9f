"""Lifecycle watching: the Docker events stream, through the tracker, out as ``evt.container.crashed``,
``evt.container.restarted``, ``evt.container.unhealthy`` and ``evt.container.healthy``
(through the outbox, each with an id derived from the Docker event, so a replay publishes nothing twice)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_common.catalogue import (
    ContainerCrashed,
    ContainerEvent,
    ContainerHealthy,
    ContainerRestarted,
    ContainerUnhealthy,
)
from berth_common.db import Unit
from berth_common.db.unit import run_unit
from berth_common.logging import get_logger
from berth_metrics.adapters.docker import DockerSource, follow_events
from berth_metrics.domain.lifecycle import LifecycleTracker, Signal

log = get_logger(__name__)


def message_for(signal: Signal, server: str, loop_count: int, loop_window_s: float) -> ContainerEvent:
    common: dict[str, Any] = {
        "container_id": signal.container_id,
        "container_name": signal.container_name,
        "image": signal.image,
        "application_id": signal.labels.get("app"),
        "service": signal.labels.get("service"),
        "deployment_id": signal.labels.get("deployment"),
        "team_id": signal.labels.get("team"),
        "server": server,
        "reason": signal.reason,
        "occurred_at": signal.at,
    }
    if signal.kind == "crashed":
        return ContainerCrashed(**common, exit_code=signal.exit_code, oom_killed=signal.oom_killed)
    if signal.kind == "restarted":
        return ContainerRestarted(
            **common,
            restarts_in_window=signal.restarts_in_window,
            window_s=loop_window_s,
            loop_threshold=loop_count,
            looping=signal.looping,
        )
    if signal.kind == "unhealthy":
        return ContainerUnhealthy(**common, previous_health=signal.previous_health)
    return ContainerHealthy(**common, previous_health=signal.previous_health)


@dataclass
class EventWatcher:
    source: DockerSource
    tracker: LifecycleTracker
    bus: Bus
    sessionmaker: async_sessionmaker[AsyncSession]
    server: str
    max_backoff_s: float = 5.0

    async def run(self, stop: asyncio.Event) -> None:
        async for doc in follow_events(self.source, stop, self.max_backoff_s):
            for signal in self.tracker.feed(doc):
                await self.announce(signal)

    async def announce(self, signal: Signal) -> None:
        message = message_for(signal, self.server, self.tracker.loop_count, self.tracker.loop_window_s)

        async def body(unit: Unit) -> None:
            await unit.emit(message, id=f"ctr-{signal.key}")

        for attempt in range(5):
            try:
                await run_unit(self.bus, self.sessionmaker, body)
                break
            except Exception as exc:  # the database is briefly away: keep the event, try again
                log.warning("container event not stored, retrying", kind=signal.kind, error=str(exc))
                await asyncio.sleep(0.5 * 2**attempt)
        log.info("container " + signal.kind, container=signal.container_name, reason=signal.reason)
