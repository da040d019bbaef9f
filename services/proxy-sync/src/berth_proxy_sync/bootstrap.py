"""Wiring of the proxy-sync service: the only place its parts are put together."""

from __future__ import annotations

from pathlib import Path

from berth_common.runtime import Context, ServiceSpec, run
from berth_proxy_sync.entrypoints import bus
from berth_proxy_sync.settings import ProxySyncSettings

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def wire(ctx: Context) -> None:
    await bus.register(ctx)


def spec(settings: ProxySyncSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="proxy-sync", settings=settings or ProxySyncSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
