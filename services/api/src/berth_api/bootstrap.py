"""Wiring of the api service: the only place its parts are put together.

The shared runtime connects the bus and the database and runs the migrations; ``wire`` opens the secret
key (created at the first start, mode 0600), binds the HTTP port, creates the bootstrap admin on the first
start, starts the projection's consumers, the outbox sweeper and the audit log's retention purge;
``run_http`` serves the app until stop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from berth_api.adapters.secretbox import open_box
from berth_api.entrypoints import bus
from berth_api.entrypoints.http import create_app
from berth_api.entrypoints.server import HttpServer, use_uvloop
from berth_api.entrypoints.state import SECRET_BOX
from berth_api.settings import ApiSettings
from berth_api.usecases import Deps, identity
from berth_api.usecases.audit import retention_loop
from berth_api.usecases.deployments import purge_loop_once
from berth_api.usecases.projection import DeploymentProjection
from berth_api.usecases.webhook_deliveries import DEBOUNCER, Debouncer
from berth_common.runtime import Context, ServiceSpec, run
from berth_common.tasks import cancel_and_wait

VERSIONS = Path(__file__).parent / "migrations" / "versions"
SWEEP_INTERVAL_S = 30.0
AUDIT_RETENTION_TASK = "api-audit-retention"


def spec(settings: ApiSettings | None = None) -> ServiceSpec:
    settings = settings or ApiSettings()
    http = HttpServer(settings)

    async def wire(ctx: Context) -> None:
        box = await asyncio.to_thread(open_box, settings.secrets_key_path)
        ctx.extra[SECRET_BOX] = box
        http.bind()
        await identity.bootstrap_admin(ctx.sessionmaker, settings.admin_email, settings.admin_token_path)
        await bus.register(ctx, DeploymentProjection(box))
        deps = Deps(settings=settings, sessionmaker=ctx.sessionmaker, bus=ctx.bus, box=box)
        await bus.register_databases(ctx, deps)
        await bus.register_backups(ctx, deps)
        await bus.register_certificates(ctx)

        async def sweep() -> None:  # published commands carrying secret values leave the outbox
            while True:
                await purge_loop_once(deps)
                await asyncio.sleep(SWEEP_INTERVAL_S)

        sweeper = asyncio.create_task(sweep(), name="api-outbox-sweeper")
        ctx.cleanups.append(lambda: cancel_and_wait(sweeper))
        debouncer = Debouncer(deps)  # deploys the pushes webhooks queued, once due (durable: in the database)
        ctx.extra[DEBOUNCER] = debouncer
        debouncing = asyncio.create_task(debouncer.run(), name="api-webhook-debounce")
        ctx.on_stop.append(lambda: cancel_and_wait(debouncing))
        if settings.audit_retention_days > 0:  # 0: audit rows are kept forever
            purger = asyncio.create_task(retention_loop(settings, ctx.sessionmaker), name=AUDIT_RETENTION_TASK)
            ctx.on_stop.append(lambda: cancel_and_wait(purger))

    async def run_http(ctx: Context, stop: asyncio.Event) -> None:
        await http.serve(create_app(settings, ctx), stop)

    return ServiceSpec(
        name="api",
        settings=settings,
        versions_dir=VERSIONS,
        wire=wire,
        health_server=False,
        run_http=run_http,
    )


def main() -> None:
    settings = ApiSettings()
    use_uvloop(settings)
    run(spec(settings))
