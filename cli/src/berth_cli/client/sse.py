"""Server-Sent Events read from a streamed answer: one ``Event`` per blank-line-terminated block; comments
(keep-alives) are skipped. ``Resume`` says where a dropped stream of timed lines is asked again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from berth_cli.client.api import ApiError

RETRYABLE = (0, 502, 503, 504)  # unreachable, or a proxy in front of the api that lost it


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


@dataclass
class Resume:
    """A stream of timed lines (``event: line``, a ``time`` each) asked again after a drop: from the last
    line's time, the lines of that instant already shown skipped; at most ``retries`` drops in a row."""

    retries: int = 5
    last_time: str | None = None
    seen: set[str] = field(default_factory=set)
    failures: int = 0

    def fresh(self, event: Event) -> dict[str, Any] | None:
        """The line, or None when it was shown already."""
        line: dict[str, Any] = event.json()
        when = line.get("time")
        if when == self.last_time and event.data in self.seen:
            return None
        if when != self.last_time:
            self.last_time, self.seen = when, set()
        self.seen.add(event.data)
        self.failures = 0
        return line

    def dropped(self, error: ApiError | None, ended: ApiError) -> None:
        """The stream ended early (``error``: how, None: the api closed it): raise unless it may be asked
        again (then ``ended`` once too many drops came in a row), else wait a little."""
        if error is not None and (error.status not in RETRYABLE or self.failures >= self.retries):
            raise error
        self.failures += 1
        if self.failures > self.retries:
            raise ended
        time.sleep(min(2.0, 0.2 * 2**self.failures))
