"""Wiring of the scheduler service: the only place its parts are put together."""

from __future__ import annotations

from pathlib import Path

from berth_common.runtime import Context, ServiceSpec, run
from berth_scheduler.entrypoints import bus
from berth_scheduler.settings import SchedulerSettings

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def wire(ctx: Context) -> None:
    await bus.register(ctx)


def spec(settings: SchedulerSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="scheduler", settings=settings or SchedulerSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
