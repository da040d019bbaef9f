"""Validation of everything from a build command that reaches a command line or a file path.

Nothing here does I/O. Each check raises :class:`InvalidInput` naming the field and saying why, before any
git process runs or any file is touched.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from dataclasses import dataclass
from typing import Literal

from berth_common import values

MAX_URL = values.MAX_URL
MAX_REF = values.MAX_REF
MAX_PATH = 1024
MAX_ARG_VALUE = 65536
MAX_ARGS = 200

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX = re.compile(r"^[0-9a-f]+$")
_BUILD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class InvalidInput(ValueError):
    """A field of the build command is unacceptable; ``field`` names it, ``str()`` says why."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


# A validated repository location: ``url`` is what git receives, ``display`` is safe to print.
GitUrl = values.GitLocation


@dataclass(frozen=True)
class GitRef:
    """``kind``: default (the remote HEAD), name (a branch or tag), commit (40 or 64 hex digits), or
    short (7-39 hex digits: a ref of that name if the remote has one, else an abbreviated commit)."""

    kind: Literal["default", "name", "commit", "short"]
    value: str = ""


def _no_controls(field: str, value: str) -> None:
    if _CONTROL.search(value):
        raise InvalidInput(field, "control characters (newline, tab, NUL, ...) are not allowed")


def redact_url(url: str) -> str:
    """The URL without its password or token (``https://user:tok@host/x`` -> ``https://user:***@host/x``)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if not (parts.scheme and parts.netloc and "@" in parts.netloc):
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if colon:
        masked = f"{user}:***"
    elif parts.scheme in ("http", "https"):
        masked = "***"  # https://TOKEN@host/...: the user name is the token
    else:
        masked = user
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{masked}@{hostport}"))


def url_secrets(url: str) -> list[str]:
    """Credentials embedded in a URL, raw and decoded (to redact them from any git output)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return []
    if not (parts.scheme and "@" in parts.netloc):
        return []
    userinfo = parts.netloc.rpartition("@")[0]
    user, colon, password = userinfo.partition(":")
    raw = password if colon else (user if parts.scheme in ("http", "https") else "")
    return sorted({v for v in (raw, urllib.parse.unquote(raw)) if v}, key=len, reverse=True)


def validate_git_url(url: str, *, allow_local: bool = False, field: str = "source.repository") -> GitUrl:
    """The repository by the shared rule (``berth_common.values.git_location``): https://, http://, git://,
    ssh:// and scp-like ``user@host:path``; file:// and absolute local paths only when ``allow_local``."""
    try:
        return values.git_location(url, allow_local=allow_local)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None


def validate_ref(ref: str, field: str = "source.ref") -> GitRef:
    """A commit (40 or 64 hex digits), or a branch or tag by the shared rule (``berth_common.values``)."""
    if ref in ("", "HEAD"):
        return GitRef("default")
    lowered = ref.lower()
    if _HEX.fullmatch(lowered) and len(ref) in (40, 64):
        return GitRef("commit", lowered)
    try:
        name = values.git_ref_name(ref)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None
    if _HEX.fullmatch(lowered) and 7 <= len(ref) < 40:
        return GitRef("short", name)
    return GitRef("name", name)


def validate_relpath(path: str, field: str, *, allow_empty: bool = True) -> str:
    """A relative path inside the checkout: normalised, no '..', not absolute. Returns '' for the root."""
    if path in ("", ".", "./"):
        if allow_empty:
            return ""
        raise InvalidInput(field, "a path is required")
    if len(path) > MAX_PATH:
        raise InvalidInput(field, f"longer than {MAX_PATH} characters")
    _no_controls(field, path)
    if "\\" in path:
        raise InvalidInput(field, "backslashes are not allowed; use '/'")
    if path.startswith("/"):
        raise InvalidInput(field, "must be relative to the repository (no leading '/')")
    if any(part == ".." for part in path.split("/")):
        raise InvalidInput(field, "'..' is not allowed")
    norm = posixpath.normpath(path)
    if norm in ("", "."):
        return ""
    if norm.startswith(("/", "../")) or norm == "..":  # pragma: no cover - excluded above
        raise InvalidInput(field, "escapes the repository")
    if norm.startswith("-"):
        raise InvalidInput(field, "may not start with '-'")
    return norm


def validate_build_arg(name: str, value: str, field: str = "source.build_args") -> None:
    if not values.ENV_NAME_RE.fullmatch(name):
        raise InvalidInput(f"{field}.{name[:64]}", "build arg names are [A-Za-z_][A-Za-z0-9_]* (at most 128)")
    if len(value) > MAX_ARG_VALUE:
        raise InvalidInput(f"{field}.{name}", f"value longer than {MAX_ARG_VALUE} characters")
    if "\x00" in value:
        raise InvalidInput(f"{field}.{name}", "NUL characters are not allowed in a value")


def validate_build_id(build_id: str) -> str:
    if not _BUILD_ID.fullmatch(build_id) or ".." in build_id:
        raise InvalidInput("build_id", "letters, digits, '.', '_' and '-' only (at most 64, no '..')")
    return build_id


def validate_image_tag(tag: str, field: str = "image_tag") -> str:
    try:
        return values.image_tag(tag)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None
