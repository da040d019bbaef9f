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

MAX_URL = 2048
MAX_REF = 255
MAX_PATH = 1024
MAX_ARG_VALUE = 65536
MAX_ARGS = 200

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PCT_CONTROL = re.compile(r"%(?:[01][0-9a-f]|7f)", re.IGNORECASE)
_HELPER = re.compile(r"^[A-Za-z0-9+.-]*::")  # git's remote-helper syntax: ext::, fd::, anything::
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
_USER = re.compile(r"^[A-Za-z0-9._~%!$&'()*+,;=-]{1,256}$")
_SCP = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+|\[[0-9A-Fa-f:.]+\]):(?P<path>.+)$")
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEX = re.compile(r"^[0-9a-f]+$")
_BUILD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# docker reference: lowercase path components separated by / (optionally a registry host:port first), a tag
_IMAGE_TAG = re.compile(
    r"^(?:[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
)
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")

Transport = Literal["https", "http", "git", "ssh", "file"]


class InvalidInput(ValueError):
    """A field of the build command is unacceptable; ``field`` names it, ``str()`` says why."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


@dataclass(frozen=True)
class GitUrl:
    """A validated repository location: ``url`` is what git receives, ``display`` is safe to print."""

    transport: Transport
    url: str
    display: str

    @property
    def local(self) -> bool:
        return self.transport == "file"


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


def _check_host(field: str, host: str) -> None:
    if not host:
        raise InvalidInput(field, "the URL has no host")
    if host.startswith("-"):
        raise InvalidInput(field, "a host may not start with '-'")
    if not (_HOST.fullmatch(host) or _IPV6.fullmatch(host)):
        raise InvalidInput(field, f"invalid host name {host!r}")


def validate_git_url(url: str, *, allow_local: bool = False, field: str = "source.repository") -> GitUrl:
    """Accept https://, http://, git://, ssh:// and scp-like ``user@host:path``; file:// and absolute
    local paths only when ``allow_local``. Reject option injection, remote helpers (``ext::``), control
    characters, whitespace and overly long values."""
    if not url:
        raise InvalidInput(field, "a repository URL is required")
    if len(url) > MAX_URL:
        raise InvalidInput(field, f"longer than {MAX_URL} characters")
    _no_controls(field, url)
    if any(c.isspace() for c in url):
        raise InvalidInput(field, "whitespace is not allowed in a repository URL")
    if url.startswith("-"):
        raise InvalidInput(field, "may not start with '-' (it would be read as a git option)")
    if _PCT_CONTROL.search(url):
        raise InvalidInput(field, "percent-encoded control characters are not allowed")
    if _HELPER.match(url):
        raise InvalidInput(field, "git remote helpers ('ext::', 'fd::', ...) are not allowed")
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme == "file":
            if not allow_local:
                raise InvalidInput(field, "file:// repositories are disabled (BERTH_ALLOW_LOCAL_GIT)")
            return _local(field, urllib.parse.unquote(url[len("file://") :]))
        if scheme not in ("https", "http", "git", "ssh"):
            raise InvalidInput(field, f"scheme {scheme!r} is not allowed; use https, http, git or ssh")
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidInput(field, f"not a valid URL ({exc})") from None
        if port is not None and not 0 < port < 65536:
            raise InvalidInput(field, "invalid port")
        host = parts.hostname or ""
        if parts.netloc.rpartition("@")[2].startswith("["):
            host = "[" + host + "]"
        _check_host(field, host)
        if parts.username is not None and (parts.username.startswith("-") or not parts.username):
            raise InvalidInput(field, "invalid user name in the URL")
        if not parts.path or parts.path == "/":
            raise InvalidInput(field, "the URL names no repository path")
        if parts.path.startswith("/-"):
            raise InvalidInput(field, "the repository path may not start with '-'")
        return GitUrl(scheme, url, redact_url(url))  # type: ignore[arg-type]
    if url.startswith(("/", "./", "../", "~")) or ":" not in url:
        if not allow_local:
            raise InvalidInput(field, "local repository paths are disabled (BERTH_ALLOW_LOCAL_GIT)")
        return _local(field, url)
    match = _SCP.fullmatch(url)
    if match is None:
        raise InvalidInput(field, "not a repository URL (https://, http://, git://, ssh:// or user@host:path)")
    user, host, path = match.group("user"), match.group("host"), match.group("path")
    if user is not None and (user.startswith("-") or not _USER.fullmatch(user)):
        raise InvalidInput(field, "invalid user name in the URL")
    _check_host(field, host)
    if path.startswith("-"):
        raise InvalidInput(field, "the repository path may not start with '-'")
    return GitUrl("ssh", url, url)


def _local(field: str, path: str) -> GitUrl:
    if not path.startswith("/"):
        raise InvalidInput(field, "a local repository must be an absolute path")
    norm = posixpath.normpath(path)
    if norm != path.rstrip("/") or any(part == ".." for part in path.split("/")):
        raise InvalidInput(field, "a local repository path must be normalised (no '..', '.' or '//')")
    quoted = urllib.parse.quote(norm, safe="/._-~+@")
    return GitUrl("file", f"file://{quoted}", norm)


def validate_ref(ref: str, field: str = "source.ref") -> GitRef:
    """A branch or tag name by git's check-ref-format rules (plus: no leading '-'), or a commit."""
    if ref in ("", "HEAD"):
        return GitRef("default")
    if len(ref) > MAX_REF:
        raise InvalidInput(field, f"longer than {MAX_REF} characters")
    _no_controls(field, ref)
    lowered = ref.lower()
    if _HEX.fullmatch(lowered) and len(ref) in (40, 64):
        return GitRef("commit", lowered)
    name = ref
    for prefix in ("refs/heads/", "refs/tags/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    why = _ref_problem(name)
    if why:
        raise InvalidInput(field, why)
    if _HEX.fullmatch(lowered) and 7 <= len(ref) < 40:
        return GitRef("short", name)
    return GitRef("name", name)


def _ref_problem(name: str) -> str | None:
    if not name:
        return "empty ref name"
    if name.startswith("-"):
        return "may not start with '-' (it would be read as a git option)"
    if name == "@":
        return "'@' is not a valid ref name"
    if _REF_FORBIDDEN.search(name):
        return "spaces and the characters ~ ^ : ? * [ \\ are not allowed in a ref name"
    if ".." in name:
        return "'..' is not allowed in a ref name"
    if "@{" in name:
        return "'@{' is not allowed in a ref name"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "a ref name may not start or end with '/' or contain '//'"
    if name.endswith("."):
        return "a ref name may not end with '.'"
    for component in name.split("/"):
        if component.startswith("."):
            return "a ref name component may not start with '.'"
        if component.endswith(".lock"):
            return "a ref name component may not end with '.lock'"
    return None


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
    if not _ARG_NAME.fullmatch(name):
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
    if len(tag) > 255 or not _IMAGE_TAG.fullmatch(tag):
        raise InvalidInput(field, "not a docker image reference (lowercase name[:tag])")
    return tag
