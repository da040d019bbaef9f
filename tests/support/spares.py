"""Processes started one test ahead: a test that needs a Traefik or a nats-server takes one that is already up (its
own process, directory and ports, never used by another test), and the next one starts in the background meanwhile.

A Traefik takes 0.3-0.8 s to answer its ``/ping`` on a loaded machine, a nats-server 30-100 ms to answer its
``/healthz``: each test waited that out in its setup, and now it overlaps the test before (which mostly waits on
Docker, the bus or the database). What a test gets is what it got before: a fresh process, thrown away after it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, Self, TypeVar

from tests.support.procs import NatsServer

if TYPE_CHECKING:
    from tests.proxy.support import Traefik

T = TypeVar("T")


class Spares(Generic[T]):
    """Hands out what ``make`` starts, one started ahead; ``discard`` ends the one left at the end."""

    def __init__(self, name: str, make: Callable[[], T], discard: Callable[[T], None]) -> None:
        self._make = make
        self._discard = discard
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-spare")
        self._ahead: Future[T] | None = None

    def take(self) -> T:
        """A running one no test has used; the next one starts in the background."""
        ahead, self._ahead = self._ahead, self._pool.submit(self._make)
        if ahead is not None:
            try:
                return ahead.result(60)
            except Exception:  # it did not start (another process took its port meanwhile): a new one, here
                pass
        return self._make()

    def close(self) -> None:
        """End the one started ahead (the ones handed out are their tests' to end)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            with contextlib.suppress(Exception):
                self._discard(ahead.result(60))
        self._pool.shutdown(wait=True)


class Fresh(Protocol):
    """A process started in a folder of its own: ``start`` returns it once it answers, ``kill`` ends it at once."""

    def start(self) -> Self: ...

    def kill(self) -> None: ...


P = TypeVar("P", bound=Fresh)


def fresh_spares(name: str, root: Path, make: Callable[[Path], P]) -> Spares[P]:
    """Spares of ``make(folder)`` started, each in a new folder ``root/<name>-<random>``; one that never answered
    is killed, not left running (the ones handed out are killed after their tests)."""

    def started() -> P:
        folder = root / f"{name}-{uuid.uuid4().hex[:10]}"
        folder.mkdir(parents=True)
        proc = make(folder)
        try:
            return proc.start()
        except BaseException:
            proc.kill()
            raise

    return Spares(name, started, lambda proc: proc.kill())


def traefik_spares(root: Path) -> Spares[Traefik]:
    """Fresh Traefiks, each in a directory of its own under ``root`` (killed after their tests: ``Traefik.kill``)."""
    from tests.proxy.support import Traefik  # the proxy-sync service's modules: only where a test needs Traefik

    return fresh_spares("traefik", root, Traefik)


def nats_spares(root: Path) -> Spares[NatsServer]:
    """Fresh nats-servers (JetStream on, a store of their own under ``root``)."""
    return fresh_spares("nats", root, NatsServer)
