"""Retention, compression and failure reasons of backups (pure): which copies retention deletes, the
streaming codecs, and a dump tool's end in words."""

from __future__ import annotations

import gzip

import pytest

from berth_scheduler.domain.backups import (
    Stored,
    compression_used,
    compressor,
    decompressor,
    exit_reason,
    stamp,
    to_prune,
)

DAY = 86400.0
NOW = 100 * DAY


def _stored(*ages_days: float) -> list[Stored]:
    return [Stored(f"k{i}", NOW - age * DAY) for i, age in enumerate(ages_days)]


def test_count_keeps_the_newest() -> None:
    stored = _stored(*range(20))  # k0 is the newest
    assert to_prune(stored, 5, None, NOW) == [f"k{i}" for i in range(5, 20)]


def test_age_deletes_the_old_ones_but_never_the_newest() -> None:
    assert to_prune(_stored(1, 2, 8, 30), None, 7, NOW) == ["k2", "k3"]
    # every copy is old: the newest one stays all the same
    assert to_prune(_stored(40, 50, 60), None, 7, NOW) == ["k1", "k2"]
    assert to_prune(_stored(40), 1, 1, NOW) == []


def test_both_limits_and_none() -> None:
    # count 3 and 7 days: a copy goes when either limit says so
    assert to_prune(_stored(1, 2, 3, 4, 10), 3, 7, NOW) == ["k3", "k4"]
    assert to_prune(_stored(1, 2, 3, 400), None, None, NOW) == []
    assert to_prune([], 1, 1, NOW) == []


def test_gzip_streams_both_ways_and_a_truncated_object_is_refused() -> None:
    assert compression_used("gzip") == "gzip"
    assert compression_used("zstd") in ("zstd", "gzip")
    data = b"".join(f"row {i}\n".encode() for i in range(50000))
    c = compressor("gzip")
    packed = b"".join(c.feed(data[i : i + 4096]) for i in range(0, len(data), 4096)) + c.end()
    assert gzip.decompress(packed) == data
    d = decompressor("gzip")
    assert b"".join(d.feed(packed[i : i + 1000]) for i in range(0, len(packed), 1000)) + d.end() == data
    bomb = compressor("gzip")
    zeros = bomb.feed(bytes(64 << 20)) + bomb.end()  # 64 MiB of zeros in a small chunk
    sizes = [len(p) for p in decompressor("gzip").pieces(zeros, 1 << 20)]
    assert sum(sizes) == 64 << 20 and max(sizes) <= 1 << 20
    cut = decompressor("gzip")
    cut.feed(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="truncated"):
        cut.end()


def test_stamps_sort_by_time() -> None:
    assert stamp(0) == "19700101T000000Z"
    assert stamp(1780000000) < stamp(1780000001)


def test_a_tools_end_in_words() -> None:
    assert exit_reason("pg_dump", 1, 'pg_dump: error: database "x" does not exist\n') == (
        'pg_dump exited with code 1: pg_dump: error: database "x" does not exist'
    )
    assert exit_reason("pg_dump", 137, "") == (
        "pg_dump was killed by signal 9 (exit code 137; the container stopped?): no message"
    )
    assert exit_reason("pg_restore", -1, "") == "pg_restore was cut off before it ended: no message"
