"""Wiring of the proxy-sync service: the only place its parts are put together."""

from __future__ import annotations

from pathlib import Path

from berth_common.runtime import Context, ServiceSpec, run
from berth_proxy_sync.adapters.files import DynamicDir
from berth_proxy_sync.adapters.sites import RemoteSites, local_site
from berth_proxy_sync.adapters.traefik_api import TraefikApi
from berth_proxy_sync.entrypoints import bus
from berth_proxy_sync.settings import ProxySyncSettings
from berth_proxy_sync.usecases.routes import Routes, reconcile
from berth_proxy_sync.usecases.sites import Sites

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def wire(ctx: Context) -> None:
    settings = ctx.settings
    assert isinstance(settings, ProxySyncSettings)
    files = DynamicDir(settings.dynamic_dir)
    traefik = TraefikApi(settings.traefik_api_url, poll_interval_s=settings.route_poll_interval_s)
    # The files are derived from the database: rewrite them all before taking any command.
    await reconcile(files, ctx.sessionmaker, default_certificate=settings.traefik_default_cert)
    remote = RemoteSites(
        settings.server_traefik_root,
        web_port=settings.server_web_port,
        image=settings.server_traefik_image,
        binary=settings.server_traefik_binary,
        poll_interval_s=settings.route_poll_interval_s,
        connect_timeout_s=settings.server_connect_timeout_s,
    )
    sites = Sites(local_site(files, traefik), remote, settings.server_setup_timeout_s)
    ctx.cleanups.append(sites.close)
    routes = Routes(sites, settings.route_live_timeout_s)
    await bus.register(ctx, routes, sites, settings.route_concurrency)


def spec(settings: ProxySyncSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="proxy-sync", settings=settings or ProxySyncSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
