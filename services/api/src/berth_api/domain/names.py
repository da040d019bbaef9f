"""Grammars of everything a user names: resources, hosts, images, git URLs, refs, paths, variables.

Pure functions that return the normalised value or raise ``ValueError`` saying why (pydantic turns that
into a 422 naming the field). Whatever passes here may reach a command line (as one argv element), a file
path or a Traefik rule, so the checks are strict: ASCII only, no control characters, bounded lengths.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse

from berth_common.catalogue import ENV_NAME_PATTERN, SLUG_PATTERN

# Projects and environments: a DNS label. Applications and services: at most 32 (they are parts of
# container names, ``berth-<app>-<service>-<deployment>-<n>``), the catalogue's SLUG_PATTERN.
RESOURCE_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SLUG_RE = re.compile(SLUG_PATTERN)
ENV_NAME_RE = re.compile(ENV_NAME_PATTERN)
LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PCT_CONTROL = re.compile(r"%(?:[01][0-9a-f]|7f)", re.IGNORECASE)
_HELPER = re.compile(r"^[A-Za-z0-9+.-]*::")  # git remote helpers: ext::, fd::, anything::
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IPV6_RE = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
_USER_RE = re.compile(r"^[A-Za-z0-9._~%!$&'()*+,;=-]{1,256}$")
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+):(?P<path>.+)$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
# docker's reference grammar: [host[:port]/]component(/component)*[:tag][@digest], lowercase components
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(
    r"^(?:(?P<host>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?)/)?"
    rf"(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)

MAX_URL = 2048
MAX_REF = 255
MAX_PATH = 1024
MAX_IMAGE = 255
MAX_HOST = 253
MAX_VALUE = 65536
MAX_ARG = 4096


def _ascii_printable(value: str, what: str) -> None:
    if _CONTROL.search(value):
        raise ValueError(f"{what}: control characters (newline, tab, NUL, ...) are not allowed")
    if not value.isascii():
        raise ValueError(f"{what}: only ASCII characters are allowed")


def resource_name(value: str) -> str:
    """Projects and environments: lowercase letters, digits and '-', at most 63, no '-' at either end."""
    if len(value) > 63 or not RESOURCE_NAME_RE.fullmatch(value):
        raise ValueError("use 1-63 lowercase letters, digits or '-' (not at either end)")
    return value


def slug(value: str) -> str:
    """Applications and services: like a resource name, but at most 32 (they end up in container names)."""
    if len(value) > 32 or not SLUG_RE.fullmatch(value):
        raise ValueError("use 1-32 lowercase letters, digits or '-' (not at either end)")
    return value


def env_name(value: str) -> str:
    if not ENV_NAME_RE.fullmatch(value):
        raise ValueError("a variable name is [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)")
    return value


def env_value(value: str) -> str:
    """Values are passed to Docker as data (never through a shell); only NUL cannot be carried."""
    if len(value) > MAX_VALUE:
        raise ValueError(f"a value is at most {MAX_VALUE} characters")
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed in a value")
    return value


_EMAIL_LOCAL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
MAX_EMAIL = 254


def email(value: str) -> str:
    """An e-mail address (RFC 5321 dot-atom local part, RFC 1123 domain), lowercased; ASCII only."""
    _ascii_printable(value, "email")
    if not 3 <= len(value) <= MAX_EMAIL:
        raise ValueError(f"an e-mail address has 3-{MAX_EMAIL} characters")
    local, at, domain = value.rpartition("@")
    if not at or not local or len(local) > 64 or not _EMAIL_LOCAL_RE.fullmatch(local):
        raise ValueError("not an e-mail address (local@example.com)")
    try:
        domain = hostname(domain)
    except ValueError as exc:
        raise ValueError(f"the e-mail domain is invalid: {exc}") from None
    return f"{local}@{domain}".lower()


def description(value: str) -> str:
    """Free text for people: any character but the control ones (newline and tab are fine)."""
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in value):
        raise ValueError("control characters (other than newline and tab) are not allowed")
    return value


def display_name(value: str) -> str:
    """A person's name as shown: any printable characters (no control characters, no newline), trimmed."""
    if not value.isprintable():
        raise ValueError("control characters (newline, tab, ...) are not allowed in a name")
    value = value.strip()
    if not value:
        raise ValueError("a name needs at least one visible character")
    return value


def argv_item(value: str) -> str:
    """One element of a container command (an argv list: no shell ever parses it)."""
    if len(value) > MAX_ARG:
        raise ValueError(f"a command argument is at most {MAX_ARG} characters")
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed in a command")
    return value


def hostname(value: str) -> str:
    """A DNS host name (RFC 1123), lowercased; internationalised names must be given in punycode."""
    _ascii_printable(value, "host")
    host = value.lower().removesuffix(".")
    if not host or len(host) > MAX_HOST:
        raise ValueError(f"a host name has 1-{MAX_HOST} characters")
    labels = host.split(".")
    if len(labels) < 2:
        raise ValueError("a host name needs at least two labels (e.g. app.example.com)")
    for label in labels:
        if not LABEL_RE.fullmatch(label):
            raise ValueError(f"invalid label {label[:63]!r}: 1-63 letters, digits or '-' (not at either end)")
    if labels[-1].isdigit():
        raise ValueError("an IP address is not a host name")
    return host


def image_ref(value: str) -> str:
    """A docker image reference: ``[registry[:port]/]name[:tag][@sha256:digest]``, lowercase name."""
    _ascii_printable(value, "image")
    if not value or len(value) > MAX_IMAGE:
        raise ValueError(f"an image reference has 1-{MAX_IMAGE} characters")
    if value.startswith("-"):
        raise ValueError("an image reference may not start with '-'")
    m = _IMAGE_RE.fullmatch(value)
    if m is None:
        raise ValueError("not an image reference: [registry[:port]/]name[:tag][@sha256:digest], lowercase name")
    host = m.group("host")
    if host and ":" in host and not 0 < int(host.rsplit(":", 1)[1]) < 65536:
        raise ValueError("invalid registry port")
    return value


def git_url(value: str, *, allow_local: bool = False) -> str:
    """https://, http://, git://, ssh:// or scp-like ``user@host:path``; ``file://`` and absolute paths only
    when local repositories are allowed. Option injection (a leading '-'), remote helpers (``ext::``),
    whitespace and control characters are refused."""
    if not value or len(value) > MAX_URL:
        raise ValueError(f"a repository URL has 1-{MAX_URL} characters")
    _ascii_printable(value, "repository")
    if any(c.isspace() for c in value):
        raise ValueError("whitespace is not allowed in a repository URL")
    if value.startswith("-"):
        raise ValueError("may not start with '-' (git would read it as an option)")
    if _PCT_CONTROL.search(value):
        raise ValueError("percent-encoded control characters are not allowed")
    if _HELPER.match(value):
        raise ValueError("git remote helpers ('ext::', 'fd::', ...) are not allowed")
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme == "file":
            if not allow_local:
                raise ValueError("file:// repositories are not allowed on this server")
            return _local_path(urllib.parse.unquote(value[len("file://") :]), value)
        if scheme not in ("https", "http", "git", "ssh"):
            raise ValueError(f"scheme {scheme[:20]!r} is not allowed; use https, http, git or ssh")
        try:
            parts = urllib.parse.urlsplit(value)
            port = parts.port
        except ValueError:
            raise ValueError("not a valid URL") from None
        if port is not None and not 0 < port < 65536:
            raise ValueError("invalid port")
        host = parts.hostname or ""
        if parts.netloc.rpartition("@")[2].startswith("["):
            host = f"[{host}]"
        _git_host(host)
        if parts.username is not None and (not parts.username or parts.username.startswith("-")):
            raise ValueError("invalid user name in the URL")
        if parts.password is not None or (parts.username is not None and scheme in ("http", "https")):
            # It would be stored and shown in the clear: credentials never go into a URL.
            raise ValueError("credentials in the repository URL are not accepted (they would not stay secret)")
        if not parts.path or parts.path == "/":
            raise ValueError("the URL names no repository path")
        if parts.path.startswith("/-"):
            raise ValueError("the repository path may not start with '-'")
        if parts.fragment or "#" in value:
            raise ValueError("a repository URL has no fragment ('#')")
        return value
    if value.startswith(("/", "./", "../", "~")) or ":" not in value:
        if not allow_local:
            raise ValueError("local repository paths are not allowed on this server")
        return _local_path(value, value)
    m = _SCP_RE.fullmatch(value)
    if m is None:
        raise ValueError("not a repository URL (https://, http://, git://, ssh:// or user@host:path)")
    user, host, path = m.group("user"), m.group("host"), m.group("path")
    if user is not None and (user.startswith("-") or not _USER_RE.fullmatch(user)):
        raise ValueError("invalid user name in the URL")
    _git_host(host)
    if path.startswith("-"):
        raise ValueError("the repository path may not start with '-'")
    return value


def _git_host(host: str) -> None:
    if not host:
        raise ValueError("the URL has no host")
    if host.startswith("-"):
        raise ValueError("a host may not start with '-'")
    if not (_HOST_RE.fullmatch(host) or _IPV6_RE.fullmatch(host)):
        raise ValueError("invalid host name in the URL")


def _local_path(path: str, original: str) -> str:
    if not path.startswith("/"):
        raise ValueError("a local repository must be an absolute path")
    if any(part == ".." for part in path.split("/")) or posixpath.normpath(path) != path.rstrip("/"):
        raise ValueError("a local repository path must be normalised (no '..', '.' or '//')")
    return original


def branch(value: str) -> str:
    """A branch or tag name by git's check-ref-format rules, and never starting with '-'."""
    if not value or len(value) > MAX_REF:
        raise ValueError(f"a branch name has 1-{MAX_REF} characters")
    _ascii_printable(value, "branch")
    name = value
    for prefix in ("refs/heads/", "refs/tags/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    why = _ref_problem(name)
    if why:
        raise ValueError(why)
    return value


def _ref_problem(name: str) -> str | None:
    checks = (
        (not name, "empty ref name"),
        (name.startswith("-"), "may not start with '-' (git would read it as an option)"),
        (name == "@", "'@' is not a valid ref name"),
        (bool(_REF_FORBIDDEN.search(name)), "spaces and the characters ~ ^ : ? * [ \\ are not allowed"),
        (".." in name, "'..' is not allowed in a ref name"),
        ("@{" in name, "'@{' is not allowed in a ref name"),
        (name.startswith("/") or name.endswith("/") or "//" in name, "no '/' at either end and no '//'"),
        (name.endswith("."), "a ref name may not end with '.'"),
    )
    for bad, why in checks:
        if bad:
            return why
    for component in name.split("/"):
        if component.startswith("."):
            return "a ref name component may not start with '.'"
        if component.endswith(".lock"):
            return "a ref name component may not end with '.lock'"
    return None


def commit(value: str) -> str:
    """A commit id: 7-64 hexadecimal digits (lowercased)."""
    lowered = value.lower()
    if not 7 <= len(lowered) <= 64 or not _HEX_RE.fullmatch(lowered):
        raise ValueError("a commit is 7-64 hexadecimal digits")
    return lowered


def relative_path(value: str) -> str:
    """A path inside the repository, stored as given: relative, already normal, no '..', no backslash, no
    component starting with '-'; '' is the repository root."""
    if len(value) > MAX_PATH:
        raise ValueError(f"a path is at most {MAX_PATH} characters")
    _ascii_printable(value, "path")
    if value == "":
        return ""
    if value == ".":
        raise ValueError("the repository root is written '' (an empty string), not '.'")
    if "\\" in value:
        raise ValueError("backslashes are not allowed; use '/'")
    if value.startswith("/"):
        raise ValueError("must be relative to the repository (no leading '/')")
    if any(part == ".." for part in value.split("/")):
        raise ValueError("'..' is not allowed")
    norm = posixpath.normpath(value)
    if norm != value:
        # Stored exactly as given or refused: never rewritten ('a//b', './a', 'a/' and '.' are refused).
        raise ValueError(f"must be a normal path (no empty, '.' or trailing components): write {norm!r}")
    if any(part.startswith("-") for part in value.split("/")):
        raise ValueError("a path component may not start with '-'")
    return value


def dockerfile_path(value: str) -> str:
    path = relative_path(value)
    if not path:
        raise ValueError("a Dockerfile path is required (null: let Berth detect how to build)")
    return path
