"""Wiring of the builder service: the only place its parts are put together."""

from __future__ import annotations

from pathlib import Path

from berth_builder.entrypoints import bus
from berth_builder.settings import BuilderSettings
from berth_common.runtime import Context, ServiceSpec, run

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def wire(ctx: Context) -> None:
    await bus.register(ctx)


def spec(settings: BuilderSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="builder", settings=settings or BuilderSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
