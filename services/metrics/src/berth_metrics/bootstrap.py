"""Wiring of the metrics service: the only place its parts are put together."""

from __future__ import annotations

from pathlib import Path

from berth_common.runtime import Context, ServiceSpec, run
from berth_metrics.entrypoints import bus
from berth_metrics.settings import MetricsSettings

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def wire(ctx: Context) -> None:
    await bus.register(ctx)


def spec(settings: MetricsSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="metrics", settings=settings or MetricsSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
