"""Server-Sent Events read from a streamed answer: one ``Event`` per blank-line-terminated block; comments
(keep-alives) are skipped."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    name: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


def events(lines: Iterable[str]) -> Iterator[Event]:
    """Parse the stream's lines (as ``httpx.Response.iter_lines`` gives them) into events."""
    name, id_ = "message", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield Event(name, "\n".join(data), id_)
            name, data, id_ = "message", [], None
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
        elif key == "id":
            id_ = value
    if data:
        yield Event(name, "\n".join(data), id_)
