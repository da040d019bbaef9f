"""Wiring of the api service: the only place its parts are put together.

The shared runtime connects the bus and the database and runs the migrations; ``wire`` binds the HTTP
port and creates the bootstrap admin on the first start; ``run_http`` serves the app until stop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from berth_api import handlers
from berth_api.entrypoints.http import create_app
from berth_api.entrypoints.server import HttpServer
from berth_api.settings import ApiSettings
from berth_common.runtime import Context, ServiceSpec, run

VERSIONS = Path(__file__).parent / "migrations" / "versions"


def spec(settings: ApiSettings | None = None) -> ServiceSpec:
    settings = settings or ApiSettings()
    http = HttpServer(settings)

    async def wire(ctx: Context) -> None:
        http.bind()
        await handlers.bootstrap_admin(ctx.sessionmaker, settings.admin_email, settings.admin_token_path)

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
    run(spec())
