"""Serialised pages of a team's list, kept by (team, the team's revision, the query), and HTTP validators.

A page is valid while the team's revision is the one it was cached under: the revision comes with the
token check of every request (``teams.revision``, bumped by the database in the transaction of every write
that changes what the list shows, api_0005), so any api process tells a stale page at once, with no extra
round trip and no time-to-live. A page built while a write commits may hold data newer than its key; it is
never older, so it is never stale for a request that read the same revision.

Bounded by bytes, least recently used first out; pages of an older revision of the team are dropped when a
newer one is stored. Concurrent misses of one key build the page once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

Key = tuple[str, int, Hashable]  # team id, team revision, the query


@dataclass(frozen=True)
class Page:
    body: bytes
    etag: str  # strong: a digest of the body, quoted
    headers: tuple[tuple[str, str], ...] = ()  # pagination (Link, X-Total-Count)

    @classmethod
    def of(cls, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> Page:
        return cls(body, f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"', headers)


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


class PageCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._pages: OrderedDict[Key, Page] = OrderedDict()
        self._by_team: dict[str, set[Key]] = {}
        self._latest: dict[str, int] = {}
        self._building: dict[Key, asyncio.Task[Page]] = {}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._pages)

    async def get(self, key: Key, build: Callable[[], Awaitable[Page]]) -> Page:
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
            self.hits += 1
            return page
        self.misses += 1
        if self.max_bytes <= 0:
            return await build()
        task = self._building.get(key)
        if task is None:
            task = asyncio.ensure_future(self._build(key, build))
            self._building[key] = task
            task.add_done_callback(lambda done: self._built(key, done))
        return await asyncio.shield(task)  # one caller going away does not cancel the others' page

    def _built(self, key: Key, task: asyncio.Task[Page]) -> None:
        self._building.pop(key, None)
        if not task.cancelled():
            task.exception()  # an error reaches every caller; never "exception was never retrieved"

    async def _build(self, key: Key, build: Callable[[], Awaitable[Page]]) -> Page:
        page = await build()
        self._store(key, page)
        return page

    def _store(self, key: Key, page: Page) -> None:
        team, revision, _ = key
        if revision < self._latest.get(team, revision) or len(page.body) > self.max_bytes // 4:
            return  # a page of a revision already superseded, or one too large to be worth keeping
        if revision > self._latest.get(team, revision):
            for old in list(self._by_team.get(team, ())):
                self._drop(old)
        self._latest[team] = revision
        self._pages[key] = page
        self._by_team.setdefault(team, set()).add(key)
        self.size += len(page.body)
        while self.size > self.max_bytes and self._pages:
            self._drop(next(iter(self._pages)))

    def _drop(self, key: Key) -> None:
        page = self._pages.pop(key, None)
        if page is None:
            return
        self.size -= len(page.body)
        team = key[0]
        keys = self._by_team.get(team)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_team[team]
                self._latest.pop(team, None)
