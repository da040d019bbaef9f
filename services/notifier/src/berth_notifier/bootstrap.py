"""Wiring of the notifier service: the only place its parts are put together."""

from __future__ import annotations

from pathlib import Path

from berth_common.runtime import Context, ServiceSpec, run
from berth_notifier.entrypoints import bus
from berth_notifier.settings import NotifierSettings

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def wire(ctx: Context) -> None:
    await bus.register(ctx)


def spec(settings: NotifierSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="notifier", settings=settings or NotifierSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
