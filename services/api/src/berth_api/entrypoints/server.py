"""Serve the app with uvicorn inside the shared runtime, until the runtime's stop event.

The socket is bound during ``wire`` so a taken port fails the service start (uvicorn would call
``sys.exit`` instead). Signals stay with the runtime: uvicorn does not install handlers of its own.
On stop, uvicorn stops accepting, lets in-flight requests finish (up to ``shutdown_grace_s``), and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from berth_api.settings import ApiSettings
from berth_common.logging import get_logger

log = get_logger(__name__)


def use_uvloop(settings: ApiSettings) -> bool:
    """Run this process's event loop on uvloop (when installed and not turned off): the request path's
    asyncpg statements and socket writes cost about half the CPU. Call before the loop starts."""
    if not settings.uvloop:
        return False
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


class _Server(uvicorn.Server):
    """uvicorn's server, stopping as soon as it is told (``exit``) rather than at its next tenth of a second,
    and without uvicorn's pause for open connections when none is open."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the runtime owns SIGTERM/SIGINT and sets the stop event

    def exit(self) -> None:
        self.should_exit = True
        self._exit.set()

    async def main_loop(self) -> None:
        """uvicorn's ticks (its Date header each second), each ended early by ``exit``."""
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's graceful shutdown while a connection or a request is open (their requests finish); else
        the listening socket closes at once (uvicorn would pause a tenth of a second for connections first)."""
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


class HttpServer:
    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.sock: socket.socket | None = None

    @property
    def port(self) -> int:
        if self.sock is None:
            raise RuntimeError("not bound")
        return int(self.sock.getsockname()[1])

    def bind(self) -> int:
        host, port = self.settings.http_host, self.settings.http_port
        family, type_, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, type_, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock = sock
        return self.port

    async def serve(self, app: FastAPI, stop: asyncio.Event) -> None:
        if self.sock is None:
            self.bind()
        assert self.sock is not None
        config = uvicorn.Config(
            app,
            lifespan="off",
            http="auto",  # httptools when installed (C parser), else h11
            log_config=None,
            access_log=False,
            server_header=False,
            # Forwarded headers are read by the app, from trusted proxies only (``domain.forwarded``): uvicorn
            # would otherwise believe them from 127.0.0.1 (its default) and rewrite the client's address.
            proxy_headers=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=self.settings.shutdown_grace_s,
        )
        server = _Server(config)
        # Everything built so far (the app, its schemas and routes, the modules) lives as long as the process:
        # keep it out of the garbage collector's full passes, which otherwise scan it all (60-80 ms pauses
        # under load, the whole tail of the request latency).
        gc.collect()
        gc.freeze()
        serving = asyncio.create_task(server.serve(sockets=[self.sock]), name="api-http")
        stopping = asyncio.create_task(stop.wait())
        log.info("api listening", url=f"http://{self.settings.http_host}:{self.port}")
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if serving.done() and not stop.is_set():
                log.error("api http server stopped unexpectedly; stopping the service", error=str(serving.exception()))
                stop.set()
            server.exit()
            await serving
        finally:
            stopping.cancel()
            self.sock = None
        log.info("api http server stopped")
