"""The list's item cache alone: an item is reused only for the digest it was made from, one entry per
application, bounded by bytes (least recently used out), nothing kept when the cache is off."""

from __future__ import annotations

from berth_api.entrypoints.item_cache import ItemCache


def test_an_item_is_reused_only_for_the_row_it_was_made_from():
    cache = ItemCache(1000)
    assert cache.get("a", b"1") is None
    cache.put("a", b"1", b'{"a":1}')
    assert cache.get("a", b"1") == b'{"a":1}'
    assert cache.get("a", b"2") is None  # the row changed
    cache.put("a", b"2", b'{"a":2}')
    assert len(cache) == 1 and cache.size == len(b'{"a":2}')
    assert cache.get("a", b"1") is None and cache.get("a", b"2") == b'{"a":2}'
    assert (cache.hits, cache.misses) == (2, 3)


def test_bounded_by_bytes_least_recently_used_out():
    cache = ItemCache(100)
    for key in "abcd":
        cache.put(key, b"d", key.encode() * 20)
    cache.get("a", b"d")  # used: b goes first
    cache.put("e", b"d", b"e" * 25)  # 105 bytes: one goes
    assert cache.size <= 100
    assert cache.get("b", b"d") is None and cache.get("a", b"d") == b"a" * 20
    assert cache.get("e", b"d") == b"e" * 25 and len(cache) == 4


def test_nothing_kept_when_off():
    cache = ItemCache(0)
    cache.put("a", b"d", b"{}")
    assert len(cache) == 0 and cache.get("a", b"d") is None
