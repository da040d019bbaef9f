"""A followed log read chunk by chunk (``LineReader``): the same lines whichever way the answer is cut."""

from __future__ import annotations

from berth_common.docker import logframes
from tests.common.test_logframes import frame

DATA = (
    frame(1, b"2026-12-05T05:30:00.123456789Z one\n")
    + frame(2, b"2026-12-05T05:30:01Z err ")
    + frame(1, b"2026-12-05T05:30:02Z two\n")
    + frame(2, b"joined\n")
    + frame(1, b"2026-12-05T05:30:03Z no newline")
)


def test_every_cut_gives_the_lines_of_the_whole_answer():
    whole = logframes.lines(DATA)
    assert [(x.stream, x.text) for x in whole] == [
        ("stdout", "one"),
        ("stdout", "two"),
        ("stderr", "err joined"),
        ("stdout", "no newline"),
    ]
    for size in (1, 3, 7, 8, 9, 50):
        reader = logframes.LineReader()
        got: list[logframes.Line] = []
        for at in range(0, len(DATA), size):
            got += reader.feed(DATA[at : at + size])
        got += reader.flush()
        assert sorted(got, key=whole.index) == whole, size
        assert [x.text for x in got if x.stream == "stdout"] == ["one", "two", "no newline"]


def test_a_line_is_given_as_soon_as_its_newline_came():
    reader = logframes.LineReader()
    assert reader.feed(frame(1, b"2026-12-05T05:30:00Z ready")[:10]) == []
    assert reader.feed(frame(1, b"2026-12-05T05:30:00Z ready")[10:]) == []
    (line,) = reader.feed(frame(1, b"\n"))
    assert line.text == "ready" and line.time is not None
    assert reader.flush() == []


def test_a_long_line_is_cut_and_a_tty_stream_is_raw():
    reader = logframes.LineReader(timestamps=False)
    for _ in range(40):
        assert reader.feed(frame(1, b"x" * 1024)) == []
    (line,) = reader.feed(frame(1, b"\n"))
    assert len(line.text) == logframes.MAX_LINE
    tty = logframes.LineReader(tty=True, timestamps=False)
    assert [x.text for x in tty.feed(b"a\nb")] == ["a"]
    assert [x.text for x in tty.flush()] == ["b"]


def test_an_unknown_stream_kind_ends_the_reading():
    reader = logframes.LineReader(timestamps=False)
    assert reader.feed(frame(7, b"x\n") + frame(1, b"y\n")) == []
    assert reader.broken
