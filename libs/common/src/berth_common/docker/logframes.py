"""A container's log output as lines (pure: the scheduler reads database and application logs with it,
whole answers with :func:`lines`, followed ones chunk by chunk with :class:`LineReader`).

The engine's ``GET /containers/{id}/logs`` answers a container without a TTY in frames: an 8-byte header
(the stream, 1 stdout or 2 stderr, three zero bytes, the payload's length as a big-endian 32-bit number)
and the payload. A TTY container's output is one raw stream (stdout). With ``timestamps=1`` every line
starts with the engine's RFC 3339 time (nanoseconds) and a space. A line may be split over frames; the
pieces of each stream are joined until its newline.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

STREAMS = {0: "stdout", 1: "stdout", 2: "stderr"}  # 0 is stdin, which the engine never sends here
HEADER = struct.Struct(">BxxxL")
MAX_LINE = 16 * 1024  # a longer line is cut (the engine splits its own log entries at 16 KiB as well)
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ")


@dataclass(frozen=True)
class Line:
    stream: str  # stdout or stderr
    time: datetime | None
    text: str


def frames(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(stream, payload) of each complete frame of a multiplexed log answer (a cut last frame is dropped)."""
    at = 0
    while at + HEADER.size <= len(data):
        kind, size = HEADER.unpack_from(data, at)
        start = at + HEADER.size
        if kind not in STREAMS or start + size > len(data):
            return
        yield STREAMS[kind], data[start : start + size]
        at = start + size


def parse_time(line: str) -> tuple[datetime | None, str]:
    """(the engine's timestamp, the rest) of a line read with ``timestamps=1``; (None, line) without one."""
    match = _TIME.match(line)
    if match is None:
        return None, line
    whole, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    stamp = datetime.fromisoformat(f"{whole}.{micro}{'+00:00' if zone == 'Z' else zone}").astimezone(UTC)
    return stamp, line[match.end() :]


class LineReader:
    """Lines of a log answer read piece by piece (a followed log arrives in chunks cut anywhere): ``feed``
    gives the lines each chunk completes, ``flush`` what is left at the end. A frame's header or payload
    cut between chunks waits for the rest; an unknown stream kind ends the reading (the answer is not
    multiplexed as it should be)."""

    def __init__(self, *, tty: bool = False, timestamps: bool = True) -> None:
        self.tty = tty
        self.timestamps = timestamps
        self._raw = b""
        self._pending: dict[str, bytes] = {}
        self.broken = False

    def _emit(self, stream: str, raw: bytes) -> Line:
        text = raw[:MAX_LINE].decode("utf-8", "replace").removesuffix("\r")
        stamp, text = parse_time(text) if self.timestamps else (None, text)
        return Line(stream, stamp, text)

    def _pieces(self, data: bytes) -> list[tuple[str, bytes]]:
        if self.tty:
            return [("stdout", data)]
        self._raw += data
        out: list[tuple[str, bytes]] = []
        at = 0
        while not self.broken and at + HEADER.size <= len(self._raw):
            kind, size = HEADER.unpack_from(self._raw, at)
            if kind not in STREAMS:
                self.broken = True
                break
            start = at + HEADER.size
            if start + size > len(self._raw):
                break
            out.append((STREAMS[kind], self._raw[start : start + size]))
            at = start + size
        self._raw = b"" if self.broken else self._raw[at:]
        return out

    def feed(self, data: bytes) -> list[Line]:
        """The lines ``data`` completes, in order."""
        out: list[Line] = []
        for stream, payload in self._pieces(data):
            buffer = self._pending.pop(stream, b"") + payload
            *complete, rest = buffer.split(b"\n")
            out += [self._emit(stream, raw) for raw in complete]
            if rest:  # a line longer than MAX_LINE is kept only up to it until its newline comes
                self._pending[stream] = rest[: MAX_LINE + 1]
        return out

    def flush(self) -> list[Line]:
        """The last line of each stream that ended without a newline."""
        out = [self._emit(stream, rest) for stream, rest in self._pending.items()]
        self._pending.clear()
        return out


def lines(data: bytes, *, tty: bool = False, timestamps: bool = True) -> list[Line]:
    """Every line of a log answer, in order, each with its stream (and time with ``timestamps``); invalid
    UTF-8 is replaced, a carriage return before the newline dropped."""
    reader = LineReader(tty=tty, timestamps=timestamps)
    return reader.feed(data) + reader.flush()
