"""Wiring of the proxy-sync service: the only place its parts are put together."""

from __future__ import annotations

from pathlib import Path

from berth_common.runtime import Context, ServiceSpec, run
from berth_proxy_sync.adapters import dns
from berth_proxy_sync.adapters.cert_files import LocalCertFiles
from berth_proxy_sync.adapters.files import DynamicDir
from berth_proxy_sync.adapters.interfaces import interface_addresses
from berth_proxy_sync.adapters.sites import RemoteSites, local_site
from berth_proxy_sync.adapters.traefik_api import TraefikApi
from berth_proxy_sync.domain.addresses import server_addresses
from berth_proxy_sync.domain.tls import TlsSite
from berth_proxy_sync.entrypoints import bus
from berth_proxy_sync.settings import ProxySyncSettings
from berth_proxy_sync.usecases.cert_refresh import CertificateRefresh
from berth_proxy_sync.usecases.cert_watch import CertificateWatch
from berth_proxy_sync.usecases.https import Https
from berth_proxy_sync.usecases.routes import Routes, reconcile
from berth_proxy_sync.usecases.sites import Sites

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def wire(ctx: Context) -> None:
    settings = ctx.settings
    assert isinstance(settings, ProxySyncSettings)
    files = DynamicDir(settings.dynamic_dir)
    password = settings.traefik_api_password
    traefik = TraefikApi(settings.traefik_api_url, password=password, poll_interval_s=settings.route_poll_interval_s)
    tls, certs, probe = None, None, None
    if settings.proxy_tls_port is not None:  # the local Traefik serves HTTPS
        port = settings.tls_redirect_port or settings.proxy_tls_port
        tls = TlsSite(str(settings.certs_dir), port, dns_resolver=bool(settings.acme_dns_provider))
        certs, probe = LocalCertFiles(settings.certs_dir), (settings.tls_probe_host, settings.proxy_tls_port)
    # The files are derived from the database: rewrite them all before taking any command.
    await reconcile(
        files, ctx.sessionmaker, password, default_certificate=settings.traefik_default_cert, tls=tls, certs=certs
    )
    remote = RemoteSites(
        settings.server_traefik_root,
        password,
        web_port=settings.server_web_port,
        image=settings.server_traefik_image,
        binary=settings.server_traefik_binary,
        poll_interval_s=settings.route_poll_interval_s,
        connect_timeout_s=settings.server_connect_timeout_s,
        websecure_port=settings.server_websecure_port,
        acme=settings.acme(),
    )
    sites = Sites(
        local_site(files, traefik, tls=tls, certs=certs, probe=probe), remote, settings.server_setup_timeout_s
    )
    ctx.cleanups.append(sites.close)
    sites.start_watch(ctx.sessionmaker, settings.server_watch_interval_s)
    dns_server = dns.parse_server(settings.tls_dns_server) if settings.tls_dns_server else None
    addresses, found = settings.server_addresses, False
    if not addresses and settings.proxy_tls_port is not None:  # the machine's own, read once at start
        addresses = server_addresses(await interface_addresses(), settings.public_address_list)
        found = True
    https = Https(addresses, dns_server, dns_provider=bool(settings.acme_dns_provider), addresses_found=found)
    routes = Routes(sites, ctx.bus, ctx.sessionmaker, settings.route_live_timeout_s, https)
    ctx.cleanups.append(routes.close)  # cleanups run newest first: the batchers stop before the sites close
    watch = CertificateWatch(
        sites,
        routes,
        https,
        ctx.bus,
        ctx.sessionmaker,
        interval_s=settings.cert_watch_interval_s,
        issue_timeout_s=settings.cert_issue_timeout_s,
        expiring_days=settings.cert_expiring_days,
        local_log=settings.traefik_log,
    )
    watch.start()
    ctx.cleanups.append(watch.close)  # stops first
    await bus.register(ctx, routes, sites, settings.route_concurrency, CertificateRefresh(routes, ctx.sessionmaker))


def spec(settings: ProxySyncSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="proxy-sync", settings=settings or ProxySyncSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
