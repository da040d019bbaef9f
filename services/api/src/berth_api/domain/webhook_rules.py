"""What a verified push makes Berth do: deploy its commit, or skip it and say why; pure, no I/O.

- A push to the tracked branch (the application's ``source.branch``; none: the repository's default
  branch) deploys its commit. A tag push deploys only when the webhook's ``tags`` is on. A deleted ref, a
  push to another branch, an application pinned to a commit or built from an image deploy nothing.
- ``[skip ci]``, ``[ci skip]``, ``[skip deploy]``, ``[deploy skip]``, ``[skip cd]`` or ``[cd skip]`` in the
  head commit's message skips it (case-insensitive).
- Watch paths: when the webhook has some and the push lists every changed file, it deploys only when one
  of them matches a pattern and no ``!``-pattern. A pattern without a wildcard names a file or a
  directory (everything under it); ``*`` and ``?`` stay within one path segment, ``**`` crosses them.
  A push whose file list is incomplete or absent (Bitbucket) deploys: missing information never skips.
- Debounce: a push waits ``quiet_s`` for a newer one, which takes its place; never longer than ``max_s``
  after the first push of the burst.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from berth_api.domain.forge_payloads import Event, Ping, Push

SKIP_MARKERS = ("[skip ci]", "[ci skip]", "[skip deploy]", "[deploy skip]", "[skip cd]", "[cd skip]")
MAX_WATCH_PATHS = 50
MAX_PATTERN = 256


@dataclass(frozen=True)
class Decision:
    """``pong``: answer a ping; ``deploy``: queue ``commit`` of ``ref``; ``skip``: nothing, for ``reason``."""

    action: Literal["pong", "deploy", "skip"]
    reason: str = ""
    commit: str | None = None
    ref: str | None = None


def watch_path_problem(pattern: str) -> str | None:
    """Why a watch path is not accepted (None: it is): relative, no '..' segment, no control characters."""
    bare = pattern.removeprefix("!")
    if not bare or len(pattern) > MAX_PATTERN:
        return f"a watch path has 1-{MAX_PATTERN} characters"
    if any(ord(c) < 32 or c == "\x7f" for c in pattern):
        return "a watch path has no control characters"
    if bare.startswith("/") or ".." in bare.split("/") or "\\" in bare:
        return "a watch path is relative to the repository's root, with '/' and no '..'"
    return None


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str]:
    """A watch path as a regular expression over a file's path from the repository's root."""
    pattern = pattern.strip("/")
    if not any(c in pattern for c in "*?["):
        return re.compile(re.escape(pattern) + r"(?:/.*)?", re.DOTALL)
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append(r"(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(r".*")
            i += 2
        elif c == "*":
            out.append(r"[^/]*")
            i += 1
        elif c == "?":
            out.append(r"[^/]")
            i += 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"(?:/.*)?", re.DOTALL)


def watched(files: Iterable[str], patterns: Sequence[str]) -> bool:
    """Whether a changed file matches a watch path (and no ``!``-path)."""
    keep = [_compile(p) for p in patterns if not p.startswith("!")]
    drop = [_compile(p[1:]) for p in patterns if p.startswith("!")]
    for path in files:
        path = path.lstrip("/")
        if (not keep or any(r.fullmatch(path) for r in keep)) and not any(r.fullmatch(path) for r in drop):
            return True
    return False


def skip_marker(message: str | None) -> str | None:
    """The skip marker the head commit's message holds, if any."""
    lowered = (message or "").lower()
    return next((m for m in SKIP_MARKERS if m in lowered), None)


def _tracked(source: Mapping[str, Any], push: Push) -> str | None:
    return str(source["branch"]) if source.get("branch") else push.default_branch


def decide(event: Event, source: Mapping[str, Any], *, tags: bool, watch_paths: Sequence[str]) -> Decision:
    """What to do with a verified event for an application whose configured source is ``source``."""
    if isinstance(event, Ping):
        return Decision("pong")
    if not isinstance(event, Push):
        return Decision("skip", f"the {event.event!r} event does not deploy")
    if source.get("kind") != "git":
        return Decision("skip", "the application is built from an image, not from git")
    if source.get("commit"):
        return Decision("skip", "the application is pinned to a commit")
    pushes = event.refs()
    branch = _tracked(source, event)
    push = next((p for p in pushes if p.kind == "branch" and p.name == branch), None)
    if push is None and tags:
        push = next((p for p in reversed(pushes) if p.kind == "tag"), None)
    if push is None:
        names = ", ".join(f"{p.kind} {p.name}" for p in pushes)
        if branch is None:
            return Decision("skip", f"push to {names}: the tracked branch is not known (set source.branch)")
        return Decision("skip", f"push to {names}: the application tracks branch {branch}")
    if push.commit is None:
        return Decision("skip", f"the {push.kind} {push.name} was deleted")
    marker = skip_marker(push.message)
    if marker:
        return Decision("skip", f"the head commit says {marker}")
    if watch_paths and push.files_complete and not watched(push.files, watch_paths):
        return Decision("skip", "no changed file is under the watch paths")
    return Decision("deploy", commit=push.commit, ref=f"{push.kind} {push.name}")


def due_at(now: datetime, first_at: datetime, quiet_s: float, max_s: float) -> datetime:
    """When a debounced push deploys: after ``quiet_s`` without a newer one, at most ``max_s`` after the
    first push of the burst."""
    return min(now + timedelta(seconds=quiet_s), first_at + timedelta(seconds=max(max_s, quiet_s)))
