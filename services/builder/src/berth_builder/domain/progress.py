"""Reading the Engine API's build stream into plain log lines, with secrets redacted.

The legacy builder sends ``{"stream": text}`` chunks; BuildKit (``version=2``) sends
``{"id": "moby.buildkit.trace", "aux": <base64 StatusResponse protobuf>}``, decoded here with a minimal
protobuf reader and rendered like ``docker build --progress=plain`` (``#3 [2/3] RUN ...``, ``#3 DONE 0.2s``).
Both end with the image id (``aux.ID``) or an ``error``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from berth_common.docker.disk_full import no_room

MAX_LINE = 16000
REDACTED = "***"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Redactor:
    """Replaces every secret value (longest first) in a text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


# --- protobuf (wire format only) --------------------------------------------------------------------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of one protobuf message: ints for varints, bytes otherwise."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            value, i = buf[i : i + n], i + n
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def _timestamp(buf: bytes) -> float:
    seconds = nanos = 0
    for number, value in fields(buf):
        if number == 1 and isinstance(value, int):
            seconds = value
        elif number == 2 and isinstance(value, int):
            nanos = value
    return seconds + nanos / 1e9


@dataclass
class Vertex:
    digest: str
    name: str = ""
    cached: bool = False
    started: float | None = None
    completed: float | None = None
    error: str = ""


@dataclass
class Status:
    """One decoded ``StatusResponse``: vertices, (vertex digest, log bytes) pairs, warnings."""

    vertexes: list[Vertex] = field(default_factory=list)
    logs: list[tuple[str, bytes]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def decode_status(raw: bytes) -> Status:
    status = Status()
    for number, value in fields(raw):
        if not isinstance(value, bytes):
            continue
        if number == 1:
            v = Vertex(digest="")
            for n, x in fields(value):
                if n == 1 and isinstance(x, bytes):
                    v.digest = x.decode(errors="replace")
                elif n == 3 and isinstance(x, bytes):
                    v.name = x.decode(errors="replace")
                elif n == 4 and isinstance(x, int):
                    v.cached = bool(x)
                elif n == 5 and isinstance(x, bytes):
                    v.started = _timestamp(x)
                elif n == 6 and isinstance(x, bytes):
                    v.completed = _timestamp(x)
                elif n == 7 and isinstance(x, bytes):
                    v.error = x.decode(errors="replace")
            status.vertexes.append(v)
        elif number == 3:
            vertex, msg = "", b""
            for n, x in fields(value):
                if n == 1 and isinstance(x, bytes):
                    vertex = x.decode(errors="replace")
                elif n == 4 and isinstance(x, bytes):
                    msg = x
            status.logs.append((vertex, msg))
        elif number == 4:
            vertex, short = "", ""
            for n, x in fields(value):
                if n == 1 and isinstance(x, bytes):
                    vertex = x.decode(errors="replace")
                elif n == 3 and isinstance(x, bytes):
                    short = x.decode(errors="replace")
            status.warnings.append((vertex, short))
    return status


# --- the stream reader ------------------------------------------------------------------------------


@dataclass
class _VertexState:
    number: int
    announced: bool = False
    finished: bool = False
    partial: str = ""


class BuildStream:
    """Feed it the decoded JSON objects of the build response; it yields log lines and keeps the outcome."""

    def __init__(self, redact: Redactor | None = None, tail: int = 30) -> None:
        self.redact = redact or Redactor(())
        self.image_id: str | None = None
        self.error: str | None = None
        self.tail: deque[str] = deque(maxlen=tail)
        self._partial = ""
        self._vertices: dict[str, _VertexState] = {}

    def _out(self, text: str) -> list[str]:
        lines = []
        for raw in text.split("\n"):
            line = self.redact(_ANSI.sub("", raw.rstrip("\r")))
            if "\r" in line:  # progress bars redraw with \r: keep the last state
                line = line.rsplit("\r", 1)[-1]
            if len(line) > MAX_LINE:
                line = line[:MAX_LINE] + " [truncated]"
            lines.append(line)
            self.tail.append(line)
        return lines

    def feed(self, obj: dict[str, Any]) -> list[str]:
        if "error" in obj or "errorDetail" in obj:
            detail = obj.get("errorDetail") if isinstance(obj.get("errorDetail"), dict) else {}
            message = str(obj.get("error") or (detail or {}).get("message") or "unknown build error")
            self.error = self.redact(message)
            return self.flush() + self._out(f"ERROR: {message}")
        ident = obj.get("id")
        aux = obj.get("aux")
        if ident == "moby.buildkit.trace" and isinstance(aux, str):
            return self._trace(aux)
        if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
            self.image_id = aux["ID"]
            return []
        if isinstance(obj.get("stream"), str):
            text = self._partial + obj["stream"]
            *complete, self._partial = text.split("\n")
            return self._out("\n".join(complete)) if complete else []
        if isinstance(obj.get("status"), str) and not obj.get("progressDetail"):
            prefix = f"{obj['id']}: " if isinstance(ident, str) else ""
            return self._out(prefix + obj["status"])
        return []

    def flush(self) -> list[str]:
        out = []
        if self._partial:
            out += self._out(self._partial)
            self._partial = ""
        for state in self._vertices.values():
            if state.partial:
                out += self._out(f"#{state.number} {state.partial}")
                state.partial = ""
        return out

    def _state(self, digest: str) -> _VertexState:
        if digest not in self._vertices:
            self._vertices[digest] = _VertexState(number=len(self._vertices) + 1)
        return self._vertices[digest]

    def _trace(self, aux: str) -> list[str]:
        try:
            status = decode_status(base64.b64decode(aux, validate=False))
        except (ValueError, binascii.Error):
            return []
        out: list[str] = []
        for v in status.vertexes:
            st = self._state(v.digest)
            if not st.announced and (v.started is not None or v.cached) and v.name:
                st.announced = True
                out += self._out(f"#{st.number} {v.name}")
            if st.finished:
                continue
            if v.cached:
                st.finished = True
                out += self._out(f"#{st.number} CACHED")
            elif v.error:
                st.finished = True
                out += self._out(f"#{st.number} ERROR: {v.error}")
            elif v.completed is not None:
                st.finished = True
                took = f" {v.completed - v.started:.1f}s" if v.started is not None else ""
                out += self._out(f"#{st.number} DONE{took}")
        for digest, msg in status.logs:
            st = self._state(digest)
            text = st.partial + msg.decode(errors="replace")
            *complete, st.partial = text.split("\n")
            for line in complete:
                out += self._out(f"#{st.number} {line}")
        for digest, short in status.warnings:
            out += self._out(f"#{self._state(digest).number} WARNING: {short}")
        return out


# --- failure reasons --------------------------------------------------------------------------------

_MISSING_IMAGE = (
    "pull access denied",
    "manifest unknown",
    "failed to resolve source metadata",
    "failed to do request",
    "no such host",
    "repository does not exist",
    "not found: manifest",
    "failed to authorize",
)


_NO_SPACE = "no space left on device"  # a file system's words (ENOSPC), whoever prints them


def no_room_reason(context_bytes: int, free_bytes: int | None) -> str | None:
    """Why a build cannot fit on its server, said before it starts: the engine stores the whole context under
    its data root before the first step, so the context's bytes are a lower bound of what the build needs
    (base images still to pull are not counted: their size is unknown until pulled). None when it fits or
    the free space is unknown."""
    room = no_room(context_bytes, free_bytes, at_least=True)
    if room is None:
        return None
    return (
        f"the disk of the build server has no room for this build (Docker's data root): its context alone {room}: "
        "free space there (docker system prune, a larger disk) or leave files out of the context (.dockerignore), "
        "and deploy again."
    )


def build_failure_reason(error: str, tail: Iterable[str], base_images: Iterable[str]) -> str:
    """What went wrong in a person's words, with the build's last lines (all already redacted)."""
    lowered = error.lower()
    last = "\n".join(list(tail)[-15:])
    images = ", ".join(base_images)
    if _NO_SPACE in lowered:
        head = (
            "the disk of the build server is full (Docker's data root): free space there "
            "(docker system prune, a larger disk) and deploy again."
        )
    elif _NO_SPACE in last.lower():
        # a step that filled the disk fails with its exit code only; its output says why, and the engine
        # removed what the step wrote, so the disk has room again by the time anyone looks
        head = (
            "a build step ran out of disk space on the build server (Docker's data root filled up while it "
            "ran): free space there (docker system prune, a larger disk) or make the step write less, and "
            "deploy again."
        )
    elif any(n in lowered for n in _MISSING_IMAGE):
        head = (
            f"a base image ({images or 'FROM'}) is not available on this machine and no registry answered: "
            "build it locally or map its name to a local image with BERTH_IMAGE_MAP."
        )
    elif "cannot locate specified dockerfile" in lowered or "failed to read dockerfile" in lowered:
        head = "the Dockerfile was not found in the build context: check the dockerfile path and subdirectory."
    elif "dockerfile parse error" in lowered or "unknown instruction" in lowered:
        head = "the Dockerfile does not parse: fix the instruction the error names."
    elif "secret" in lowered and ("not found" in lowered or "no active session" in lowered):
        head = "a secret mount names a secret the build was not given: mark that build arg as secret."
    else:
        head = "a build step failed: fix it and deploy again."
    reason = f"{head} Docker said: {error.strip()[:800]}"
    if last:
        reason += f"\nLast lines:\n{last}"
    return reason[:4000]
