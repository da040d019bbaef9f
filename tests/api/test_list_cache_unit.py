"""The page cache alone: bounded by bytes, a team's older revisions dropped, one build per key at a time,
errors not cached; ``If-None-Match`` matching."""

from __future__ import annotations

import asyncio

import pytest

from berth_api.entrypoints.page_cache import Page, PageCache, not_modified


def page(size: int, fill: bytes = b"x") -> Page:
    return Page.of(fill * size)


async def test_hit_after_miss_and_new_revision_replaces_the_old():
    cache = PageCache(1000)
    builds = []

    def builder(p: Page):
        async def build() -> Page:
            builds.append(p)
            return p

        return build

    a = page(10, b"a")
    assert await cache.get(("t", 1, "q"), builder(a)) is a
    assert await cache.get(("t", 1, "q"), builder(page(10, b"z"))) is a
    assert (cache.hits, cache.misses, len(builds)) == (1, 1, 1)
    b = page(20, b"b")
    assert await cache.get(("t", 2, "q"), builder(b)) is b
    assert len(cache) == 1 and cache.size == 20  # revision 1 of team t is gone
    # A page built for a revision already superseded is answered but not kept.
    old = page(5, b"o")
    assert await cache.get(("t", 1, "other"), builder(old)) is old
    assert len(cache) == 1
    # Other teams are untouched.
    await cache.get(("u", 1, "q"), builder(page(30)))
    assert len(cache) == 2 and cache.size == 50


async def test_bounded_by_bytes_least_recently_used_first():
    cache = PageCache(100)

    async def get(team: str, size: int) -> Page:
        async def build() -> Page:
            return page(size)

        return await cache.get((team, 1, None), build)

    for team in "abcd":
        await get(team, 25)
    assert cache.size == 100
    await get("a", 25)  # a is now the most recently used
    await get("e", 25)
    assert cache.size == 100 and len(cache) == 4
    assert cache.hits == 1
    misses = cache.misses
    await get("b", 25)  # b was the least recently used: gone
    assert cache.misses == misses + 1
    await get("big", 26)  # more than a quarter of the cache: answered, never kept
    assert all(k[0] != "big" for k in cache._pages)


async def test_concurrent_misses_build_once_and_errors_are_not_kept():
    cache = PageCache(1000)
    calls = 0
    gate = asyncio.Event()

    async def slow() -> Page:
        nonlocal calls
        calls += 1
        await gate.wait()
        return page(3)

    waiting = [asyncio.create_task(cache.get(("t", 1, "q"), slow)) for _ in range(10)]
    await asyncio.sleep(0.01)
    gate.set()
    pages = await asyncio.gather(*waiting)
    assert calls == 1 and all(p is pages[0] for p in pages)

    async def broken() -> Page:
        raise RuntimeError("database gone")

    failing = [asyncio.create_task(cache.get(("t", 2, "q"), broken)) for _ in range(3)]
    for outcome in await asyncio.gather(*failing, return_exceptions=True):
        assert isinstance(outcome, RuntimeError)
    assert await cache.get(("t", 2, "q"), slow) == page(3)  # tried again, then kept


async def test_a_caller_going_away_does_not_cancel_the_others_page():
    cache = PageCache(1000)
    gate = asyncio.Event()

    async def slow() -> Page:
        await gate.wait()
        return page(4)

    first = asyncio.create_task(cache.get(("t", 1, "q"), slow))
    second = asyncio.create_task(cache.get(("t", 1, "q"), slow))
    await asyncio.sleep(0.01)
    first.cancel()
    gate.set()
    assert (await second).body == b"xxxx"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_disabled_cache_builds_every_time():
    cache = PageCache(0)
    calls = 0

    async def build() -> Page:
        nonlocal calls
        calls += 1
        return page(1)

    for _ in range(3):
        await cache.get(("t", 1, "q"), build)
    assert calls == 3 and len(cache) == 0


def test_etags_are_strong_digests_and_if_none_match_compares_weakly():
    a, b = Page.of(b"[1]"), Page.of(b"[2]")
    assert a.etag != b.etag and a.etag == Page.of(b"[1]").etag
    assert a.etag.startswith('"') and a.etag.endswith('"') and len(a.etag) == 34
    assert not_modified(a.etag, a.etag)
    assert not_modified(f"W/{a.etag}", a.etag)
    assert not_modified(f"{b.etag}, {a.etag}", a.etag)
    assert not_modified(" * ", a.etag)
    assert not not_modified(None, a.etag)
    assert not not_modified("", a.etag)
    assert not not_modified(b.etag, a.etag)
    assert not not_modified(a.etag.strip('"'), a.etag)  # unquoted is another tag
