"""A container's log answer read as lines: multiplexed frames, TTY output, timestamps, split lines."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from berth_common.docker import logframes


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_frames_are_split_by_stream_with_the_engines_timestamps():
    data = (
        frame(1, b"2026-12-05T05:30:00.123456789Z listening on 5432\n")
        + frame(2, b"2026-12-05T05:30:01Z LOG:  ready\r\n")
        + frame(1, b"2026-12-05T05:30:02.5+02:00 a line in ")
        + frame(2, b"2026-12-05T05:30:03Z other\n")
        + frame(1, b"two frames\n")
    )
    got = logframes.lines(data)
    assert [(x.stream, x.text) for x in got] == [
        ("stdout", "listening on 5432"),
        ("stderr", "LOG:  ready"),
        ("stderr", "other"),
        ("stdout", "a line in two frames"),
    ]
    assert got[0].time == datetime(2026, 12, 5, 5, 30, 0, 123456, tzinfo=UTC)
    assert got[3].time == datetime(2026, 12, 5, 3, 30, 2, 500000, tzinfo=UTC)


def test_a_cut_frame_an_unknown_stream_and_bad_utf8():
    assert list(logframes.frames(frame(1, b"whole\n") + frame(2, b"cut")[:-1])) == [("stdout", b"whole\n")]
    assert list(logframes.frames(frame(7, b"x"))) == []
    (line,) = logframes.lines(frame(2, b"\xff bad\n"), timestamps=False)
    assert line == logframes.Line("stderr", None, "\ufffd bad")


def test_tty_output_is_one_raw_stream_and_a_last_line_without_newline_counts():
    got = logframes.lines(b"2026-12-05T05:30:00Z one\n2026-12-05T05:30:01Z two", tty=True)
    assert [(x.stream, x.text) for x in got] == [("stdout", "one"), ("stdout", "two")]
    assert logframes.parse_time("no time here") == (None, "no time here")
