"""What the rollout code needs from the running service, in one object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.readiness import ReadinessChecker
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases.rollout.units import RolloutTransactions


@dataclass
class RolloutContext:
    settings: SchedulerSettings
    bus: Bus
    sessionmaker: async_sessionmaker[AsyncSession]
    sealer: Sealer
    docker: DockerExecutor
    readiness: ReadinessChecker
    engine: AsyncEngine
    clock: Callable[[], float] = field(default=time.time)
    units: RolloutTransactions = field(init=False)  # transactions of the rollouts (events published in the background)
    # (deployment, route step) whose commands this process sent: nothing to send again when resuming
    sent_steps: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.units = RolloutTransactions(self.bus, self.sessionmaker)
