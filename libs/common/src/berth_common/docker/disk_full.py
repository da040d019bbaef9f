"""A full disk under a Docker engine, named as such: in the engine's words, and found by asking the engine.

An engine that runs out of space while it receives a stream (an image load, a build context) often says
nothing: it stops reading and closes the connection, and the sender sees a broken pipe, which reads as an
engine that went away (retried, or reported as unreachable). After such a failure, ``probe`` asks the engine
to load a small archive: it spools it under its data root (Docker's ``tmp``), and on a full disk answers
"no space left on device". The archive is no image (the engine refuses it and removes it), so on a disk
with room nothing is left behind.

An image larger than the free space fails the same way, but the engine removes what it had written, so
after the failure the disk has room again and ``probe`` says nothing: ``no_room`` compares the image's size
with the data root's free space (measured by the caller, ``df`` on the server) and ``without_room`` names
it ("needs N MiB, M MiB free").
"""

from __future__ import annotations

import io
import re
import tarfile

from berth_common.docker.api import EngineApi
from berth_common.docker.engine import DockerUnavailable
from berth_common.docker.wire import EngineError

NO_SPACE = re.compile(r"no space left on device", re.IGNORECASE)
PROBE_BYTES = 256 * 1024  # more than an ext4 file system keeps in reserve for its own bookkeeping
PROBE_NAME = "berth-disk-probe"
PROBE_TIMEOUT_S = 10.0
MIB = 1024 * 1024


def says_full(message: str) -> bool:
    """Whether an engine's (or a tool's) message says the disk is full."""
    return bool(NO_SPACE.search(message))


def explained(message: str, where: str) -> str:
    """``message`` with a full disk named first (``where``: "server 6292e648", "the control plane's server");
    any other message as it is."""
    if says_full(message):
        return f"the disk of {where} is full (Docker's data root): {message}"
    return message


def no_room(needed_bytes: int | None, free_bytes: int | None, *, at_least: bool = False) -> str | None:
    """``needs N MiB, M MiB free`` when ``needed_bytes`` do not fit in ``free_bytes`` (the need rounded up,
    the free space down; ``at_least``: the need is a lower bound, a pull's compressed layers); None when
    they fit or either is unknown."""
    if needed_bytes is None or free_bytes is None or needed_bytes <= free_bytes:
        return None
    return f"needs {'at least ' if at_least else ''}{-(-needed_bytes // MIB)} MiB, {free_bytes // MIB} MiB free"


def without_room(
    message: str, where: str, image: str, needed_bytes: int | None, free_bytes: int | None, *, at_least: bool = False
) -> str:
    """A failed transfer or pull of ``image`` to ``where`` in words a person acts on: when the image does not
    fit in the free space of the data root (``no_room``), that first, the failure's own words after it;
    else ``explained`` (a full disk named when the words say so)."""
    room = no_room(needed_bytes, free_bytes, at_least=at_least)
    if room is None:
        return explained(message, where)
    return f"the disk of {where} has no room for image {image} (Docker's data root): it {room}: {message}"


def probe_tar() -> bytes:
    """The archive ``probe`` sends: one file of ``PROBE_BYTES`` bytes (not an image)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(PROBE_NAME)
        info.size = PROBE_BYTES
        tar.addfile(info, io.BytesIO(b"\x01" * PROBE_BYTES))
    return out.getvalue()


async def probe(api: EngineApi) -> str | None:
    """The engine's own words when its data root's disk is full (it could not store ``probe_tar``), else
    None (room, or no answer worth reading)."""
    try:
        _, body = await api.request(
            "POST",
            "images/load",
            params={"quiet": "1"},
            data=probe_tar(),
            headers={"Content-Type": "application/x-tar"},
            timeout=PROBE_TIMEOUT_S,
        )
        text = body.decode("utf-8", "replace")
    except EngineError as exc:
        text = exc.message
    except (DockerUnavailable, TimeoutError, OSError) as exc:
        text = str(exc)
    found = NO_SPACE.search(text)
    if found is None:
        return None
    start = max(0, text.rfind('"', 0, found.start()) + 1)
    return text[start : found.end()].strip() or found.group(0)
