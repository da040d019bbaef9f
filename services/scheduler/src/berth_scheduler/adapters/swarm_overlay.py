"""The overlay probe (``domain/swarm_overlay.py``) on the manager's engine: made sure of, then used as a TCP
client inside the overlay network through its relay.

:meth:`OverlayProbe.open_connection` has the shape of an SSH connection's (``(reader, writer)``), so the
readiness check's GET (``adapters/remote_readiness.get_seen``) runs through it unchanged: the writer's bytes
are sent as one check on the relay's input, the reader is fed that check's frames of the relay's output. The
probe container is made (its image delivered first, when the caller gives a way to) and started on first
use, and again after the engine lost it; one made without the engine's init (by an earlier Berth: nothing
in it reaped what ended relays left) is removed and made again. The relay (one exec for every check) is
started with the first check and again after it ended; a check it had not answered when it ended is sent
once more on the new one. It ends after ``idle_s`` without a check (or :meth:`OverlayProbe.aclose`), so a
probe left by a finished rollout holds no exec.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from berth_common.docker import API_VERSION
from berth_scheduler.adapters.engine_exec import EngineExec, EngineExecError
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.domain import swarm_overlay as dom

Socket = Callable[[], Awaitable[str]]  # the manager's engine socket (forwarded over SSH)
Image = Callable[[], Awaitable[None]]  # the probe image on the manager's engine (delivered when it lacks it)
IDLE_S = 20.0


class OverlayProbe:
    def __init__(
        self, socket: Socket, network: str, image: Image | None = None, timeout_s: float = 3.0, idle_s: float = IDLE_S
    ) -> None:
        self.socket = socket
        self.network = network
        self.image = image
        self.timeout_s = timeout_s
        self.idle_s = idle_s
        self.name = dom.probe_name(network)
        self._running = False
        self._lock = asyncio.Lock()
        self._relay: _Relay | None = None
        self._relay_lock = asyncio.Lock()
        self._numbers = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _background(self, job: Awaitable[None]) -> None:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def ensure(self) -> str:
        """The manager's socket, once the probe container runs there (made and started when it does not)."""
        path = await self.socket()
        async with self._lock:
            if self._running:
                return path
            engine = SwarmEngine(path, timeout=max(self.timeout_s, 30.0))
            found = await engine.container(self.name)
            if found is not None and not dom.reaps(found):  # made before the probe had an init: made again
                await engine.remove_container(self.name)
                found = None
            if found is None:
                if self.image is not None:
                    await self.image()
                await engine.create_container(self.name, dom.probe_body(self.network))
            if not ((found or {}).get("State") or {}).get("Running"):
                await engine.start_container(self.name)
            self._running = True
            return path

    async def open_connection(self, address: str, port: int) -> tuple[asyncio.StreamReader, _Check]:
        """One TCP connection from the probe to ``address:port`` on the overlay, opened on the relay when its
        request is written (ValueError at once for an address that is not an IP address or a bad port)."""
        dom.check_line(0, address, port, b"")
        relay = await self.relay()
        self._numbers += 1
        check = _Check(self, relay, self._numbers, address, port)
        return check.reader, check

    async def relay(self) -> _Relay:
        """The running relay (started when there is none, or it ended; a probe the engine lost, removed or
        stopped, is made sure of again once)."""
        async with self._relay_lock:
            if self._relay is not None and self._relay.alive:
                return self._relay
            for last in (False, True):
                argv = dom.relay_argv(self.timeout_s)
                ex = EngineExec(await self.ensure(), API_VERSION, self.name, argv, timeout_s=10, feed=True)
                try:
                    await ex.__aenter__()
                except EngineExecError as exc:
                    await ex.__aexit__(None, None, None)
                    if exc.status in (404, 409) and not last:
                        self._running = False
                        continue
                    raise ConnectionError(f"the overlay probe on the manager did not answer ({exc})") from None
                self._relay = _Relay(self, ex)
                return self._relay
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """End the relay (its checks end with it)."""
        if self._relay is not None:
            await self._relay.aclose()


class _Relay:
    """One relay exec: checks sent on its input, its output's frames handed to the check they belong to."""

    def __init__(self, probe: OverlayProbe, ex: EngineExec) -> None:
        self.probe = probe
        self.ex = ex
        self.alive = True
        self.ended_here = False  # ended by :meth:`_end` (idle, closed): its open checks are not sent again
        self.checks: dict[int, _Check] = {}
        self._idle: asyncio.TimerHandle | None = None
        self._pump = asyncio.create_task(self._out())
        self._still()  # a relay no check came to ends too

    def send(self, check: _Check, line: bytes) -> None:
        assert self.ex._writer is not None
        self.checks[check.number] = check
        self._still()
        self.ex._writer.write(line)

    def done(self, check: _Check) -> None:
        """The check closed its connection: its ``nc`` is ended, what it still sends is dropped."""
        if self.checks.pop(check.number, None) is not None and self.alive and self.ex._writer is not None:
            self.ex._writer.write(dom.close_line(check.number))
        self._still()

    def _still(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = None
        if self.alive and not self.checks:
            self._idle = asyncio.get_running_loop().call_later(self.probe.idle_s, self._end)

    async def _out(self) -> None:
        frames = dom.Frames()
        why = "the overlay probe's relay ended"
        try:
            async for chunk in self.ex.chunks():
                for frame in frames.feed(chunk):
                    check = self.checks.get(frame.number)
                    if check is not None:
                        check.got(frame)
        except (EngineExecError, ValueError) as exc:
            why = str(exc)
        finally:
            self.alive = False
            if self._idle is not None:
                self._idle.cancel()
            said = self.ex.error_text()
            lost, self.checks = list(self.checks.values()), {}
            for check in lost:
                check.lost(f"{why}: {said}" if said else why, again=not self.ended_here)
            with contextlib.suppress(Exception):
                await self.ex.__aexit__(None, None, None)

    def _end(self) -> None:
        self.alive = False  # a check that comes now starts another relay
        self.ended_here = True
        if self.ex._writer is not None:
            self.ex._writer.close()  # the relay reads the end of its input and ends

    async def aclose(self) -> None:
        self._end()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._pump), 5)
        self._pump.cancel()


class _Check:
    """One check's connection: its writer sends the request as a check on the relay, its reader is fed the
    check's answer; a relay that ended before any answer gets the check once more on a new relay."""

    def __init__(self, probe: OverlayProbe, relay: _Relay, number: int, address: str, port: int) -> None:
        self.probe = probe
        self.number = number
        self.address, self.port = address, port
        self.reader = asyncio.StreamReader()
        self._request = b""
        self._relay = relay
        self._answered = False
        self._resent = False
        self._closed = False

    def write(self, data: bytes) -> None:
        """Send the request (one per connection: the readiness check's GET)."""
        if self._request:
            raise OSError("a connection through the overlay probe sends one request")
        self._request = data
        if self._relay.alive:
            self._relay.send(self, dom.check_line(self.number, self.address, self.port, data))
        else:  # it ended since the connection was opened
            self.lost("the overlay probe's relay ended", again=not self._relay.ended_here)

    async def _resend(self) -> None:
        try:
            relay = await self.probe.relay()
        except Exception as exc:
            self.reader.set_exception(exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc)))
            return
        if not self._closed:
            self._relay = relay
            relay.send(self, dom.check_line(self.number, self.address, self.port, self._request))

    def got(self, frame: dom.Frame) -> None:
        if frame.kind == "o":
            self._answered = True
            self.reader.feed_data(frame.data)
            return
        said = frame.data.decode(errors="replace").strip()
        if not self._answered and said:  # nc ended without an answer and said why
            why = dom.connect_failure(said)
            self.reader.set_exception(ConnectionRefusedError(why) if "refused" in why else OSError(why))
        else:
            self.reader.feed_eof()

    def lost(self, why: str, again: bool = True) -> None:
        """The relay ended while the check was open: sent once more (``again``) when nothing came back yet."""
        if self._closed:
            return
        if self._answered or self._resent or not again:
            self.reader.set_exception(ConnectionResetError(why))
            return
        self._resent = True
        self.probe._background(self._resend())

    def close(self) -> None:
        """Stop reading: the check's ``nc`` is ended (as a closed connection's), what comes later is dropped."""
        if self._closed:
            return
        self._closed = True
        self._relay.done(self)

    async def wait_closed(self) -> None:
        return None
