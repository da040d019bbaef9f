"""Traefik started one test ahead: a test that needs one takes a Traefik that is already up (its own process, root
and ports, never used by another test), and the next one starts in the background meanwhile.

A Traefik takes 0.3-0.8 s to answer its ``/ping`` on a loaded machine, which each proxy and scheduler test waited
out in its setup; now it overlaps the test before (which mostly waits on Docker). What a test gets is what it got
before: a fresh Traefik with an empty dynamic directory, thrown away after it (``Traefik.kill``)."""

from __future__ import annotations

import contextlib
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tests.proxy.support import Traefik


class TraefikSpares:
    """Hands out fresh Traefiks under ``root`` (a directory each), one started ahead."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="traefik-spare")
        self._ahead: Future[Traefik] | None = None

    def _start(self) -> Traefik:
        root = self.root / f"traefik-{uuid.uuid4().hex[:10]}"
        root.mkdir(parents=True)
        traefik = Traefik(root)
        try:
            return traefik.start()
        except BaseException:
            traefik.kill()  # one that never answered is not left running
            raise

    def take(self) -> Traefik:
        """A running Traefik no test has used; the next one starts in the background."""
        ahead, self._ahead = self._ahead, self._pool.submit(self._start)
        if ahead is not None:
            try:
                return ahead.result(60)
            except Exception:  # it did not start (another process took its port meanwhile): a new one, here
                pass
        return self._start()

    def close(self) -> None:
        """Kill the one started ahead (the ones handed out are their tests' to end)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            with contextlib.suppress(Exception):
                ahead.result(60).kill()
        self._pool.shutdown(wait=True)
