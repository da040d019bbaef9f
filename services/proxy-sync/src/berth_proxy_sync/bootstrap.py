"""Wiring of the proxy-sync service: the only place its parts are put together."""

from __future__ import annotations

from pathlib import Path

from berth_common.runtime import Context, ServiceSpec, run
from berth_proxy_sync.adapters.files import DynamicDir
from berth_proxy_sync.adapters.traefik_api import TraefikApi
from berth_proxy_sync.entrypoints import bus
from berth_proxy_sync.settings import ProxySyncSettings
from berth_proxy_sync.usecases.route_batch import Site
from berth_proxy_sync.usecases.routes import Routes, reconcile

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def wire(ctx: Context) -> None:
    settings = ctx.settings
    assert isinstance(settings, ProxySyncSettings)
    files = DynamicDir(settings.dynamic_dir)
    traefik = TraefikApi(settings.traefik_api_url, poll_interval_s=settings.route_poll_interval_s)
    ctx.cleanups.append(traefik.close)
    # The files are derived from the database: rewrite them all before taking any command.
    await reconcile(files, ctx.sessionmaker, default_certificate=settings.traefik_default_cert)
    local = Site(files, traefik)
    routes = Routes(lambda server_id: local, ctx.bus, ctx.sessionmaker, settings.route_live_timeout_s)
    ctx.cleanups.append(routes.close)
    await bus.register(ctx, routes, settings.route_concurrency)


def spec(settings: ProxySyncSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="proxy-sync", settings=settings or ProxySyncSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
