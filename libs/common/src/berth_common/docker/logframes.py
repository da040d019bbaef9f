"""A container's log output as lines (pure: the scheduler reads database logs with it, and an application's
runtime logs can be read the same way).

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


def lines(data: bytes, *, tty: bool = False, timestamps: bool = True) -> list[Line]:
    """Every line of a log answer, in order, each with its stream (and time with ``timestamps``); invalid
    UTF-8 is replaced, a carriage return before the newline dropped."""
    pieces: list[tuple[str, bytes]] = [("stdout", data)] if tty else list(frames(data))
    pending: dict[str, bytes] = {}
    out: list[Line] = []

    def emit(stream: str, raw: bytes) -> None:
        text = raw[:MAX_LINE].decode("utf-8", "replace").removesuffix("\r")
        stamp, text = parse_time(text) if timestamps else (None, text)
        out.append(Line(stream, stamp, text))

    for stream, payload in pieces:
        buffer = pending.pop(stream, b"") + payload
        *complete, rest = buffer.split(b"\n")
        for raw in complete:
            emit(stream, raw)
        if rest:
            pending[stream] = rest
    for stream, rest in pending.items():
        emit(stream, rest)
    return out
