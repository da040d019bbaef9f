"""The overlay probe (``domain/swarm_overlay.py``) on the manager's engine: made sure of, then used as a TCP
client inside the overlay network.

:meth:`OverlayProbe.open_connection` has the shape of an SSH connection's (``(reader, writer)``), so the
readiness check's GET (``adapters/remote_readiness.get_seen``) runs through it unchanged: the writer feeds
an ``nc`` exec's input, the reader is its output. The probe container is made (its image delivered first,
when the caller gives a way to) and started on first use, and again after the engine lost it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from berth_common.docker import API_VERSION
from berth_scheduler.adapters.engine_exec import EngineExec, EngineExecError
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.domain import swarm_overlay as dom

Socket = Callable[[], Awaitable[str]]  # the manager's engine socket (forwarded over SSH)
Image = Callable[[], Awaitable[None]]  # the probe image on the manager's engine (delivered when it lacks it)


class OverlayProbe:
    def __init__(self, socket: Socket, network: str, image: Image | None = None, timeout_s: float = 3.0) -> None:
        self.socket = socket
        self.network = network
        self.image = image
        self.timeout_s = timeout_s
        self.name = dom.probe_name(network)
        self._running = False
        self._lock = asyncio.Lock()

    async def ensure(self) -> str:
        """The manager's socket, once the probe container runs there (made and started when it does not)."""
        path = await self.socket()
        async with self._lock:
            if self._running:
                return path
            engine = SwarmEngine(path, timeout=max(self.timeout_s, 30.0))
            found = await engine.container(self.name)
            if found is None:
                if self.image is not None:
                    await self.image()
                await engine.create_container(self.name, dom.probe_body(self.network))
            if not ((found or {}).get("State") or {}).get("Running"):
                await engine.start_container(self.name)
            self._running = True
            return path

    async def open_connection(self, address: str, port: int) -> tuple[asyncio.StreamReader, _Relay]:
        """One TCP connection from the probe to ``address:port`` on the overlay (a probe the engine lost,
        removed or stopped, is made sure of again once)."""
        argv = dom.connect_argv(address, port, self.timeout_s)
        for last in (False, True):
            ex = EngineExec(await self.ensure(), API_VERSION, self.name, argv, feed=True, timeout_s=10)
            try:
                await ex.__aenter__()
            except EngineExecError as exc:
                await ex.__aexit__(None, None, None)
                if exc.status in (404, 409) and not last:
                    self._running = False
                    continue
                raise ConnectionError(f"the overlay probe on the manager did not answer ({exc})") from None
            relay = _Relay(ex)
            return relay.reader, relay
        raise AssertionError("unreachable")


class _Relay:
    """The writer side of one ``nc`` exec; its output is fed to ``reader`` as it comes."""

    def __init__(self, ex: EngineExec) -> None:
        self.ex = ex
        self.reader = asyncio.StreamReader()
        self._sends: list[asyncio.Task[None]] = []
        self._pump = asyncio.create_task(self._out())

    async def _out(self) -> None:
        got = False
        try:
            async for chunk in self.ex.chunks():
                got = True
                self.reader.feed_data(chunk)
        except EngineExecError as exc:
            self.reader.set_exception(ConnectionResetError(str(exc)))
            return
        said = self.ex.error_text()
        if not got and said:  # nc ended without an answer and said why
            why = dom.connect_failure(said)
            self.reader.set_exception(ConnectionRefusedError(why) if "refused" in why else OSError(why))
            return
        self.reader.feed_eof()

    def write(self, data: bytes) -> None:
        self._sends.append(asyncio.create_task(self.ex.write(data)))

    def close(self) -> None:
        """Stop reading and writing and drop the engine's stream at once (a check cut by its timeout may
        not get to :meth:`wait_closed`); ``nc`` itself ends within its own ``-w``."""
        self._pump.cancel()
        for send in self._sends:
            send.cancel()
        if self.ex._writer is not None:
            self.ex._writer.close()

    async def wait_closed(self) -> None:
        await asyncio.gather(self._pump, *self._sends, return_exceptions=True)
        await self.ex.__aexit__(None, None, None)
