"""What the rollout code needs from the running service, in one object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.fleet import Fleet
from berth_scheduler.adapters.readiness import ReadinessChecker
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases.rollout.orphans import Orphans
from berth_scheduler.usecases.rollout.units import RolloutTransactions

if TYPE_CHECKING:
    from berth_common.ssh import SshPool


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
    pool: Callable[[], SshPool] | None = None  # the service's SSH pool (made on first use), for remote servers
    fleet: Fleet = field(init=False)  # every server's executor and readiness checker (``docker``: local's)
    orphans: Orphans = field(init=False)  # sweeps of servers whose engine restarted
    units: RolloutTransactions = field(init=False)  # transactions of the rollouts (events published in the background)
    # (deployment, route step) whose commands this process sent: nothing to send again when resuming
    sent_steps: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.units = RolloutTransactions(self.bus, self.sessionmaker)
        self.fleet = Fleet(self.docker, self.readiness, self.sessionmaker, self.pool or _own_pool())
        self.orphans = Orphans(self.fleet)


def _own_pool() -> Callable[[], SshPool]:
    """An SSH pool of the rollouts' own, made when a remote server is first used."""
    made: list[SshPool] = []

    def pool() -> SshPool:
        if not made:
            from berth_common.ssh import SshPool

            made.append(SshPool())
        return made[0]

    return pool
