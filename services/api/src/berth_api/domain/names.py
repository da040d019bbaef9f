"""Grammars of everything a user names: resources, hosts, images, git URLs, refs, paths, variables.

Pure functions that return the normalised value or raise ``ValueError`` saying why (pydantic turns that
into a 422 naming the field). Whatever passes here may reach a command line (as one argv element), a file
path or a Traefik rule, so the checks are strict: ASCII only, no control characters, bounded lengths. The
rules other services share (DNS labels, host names, slugs, variable names, images, git URLs and refs) are
``berth_common.values``; this module gives them the api's names and adds the api's own.
"""

from __future__ import annotations

import posixpath
import re

from berth_common import values
from berth_common.values import printable_ascii

# Text without control characters, as the OpenAPI document says it (each validator keeps its own message).
PRINTABLE_PATTERN = r"^[^\u0000-\u001f\u007f]*$"

# Projects and environments: a DNS label. Applications and services: a slug, at most 32 (they are parts
# of container names, ``berth-<app>-<service>-<deployment>-<n>``).
LABEL_RE = values.DNS_LABEL_RE
_HEX_RE = re.compile(r"^[0-9a-f]+$")

MAX_HOST = values.MAX_HOST
MAX_IMAGE = values.MAX_IMAGE
MAX_URL = values.MAX_URL
MAX_REF = values.MAX_REF
MAX_PATH = 1024
MAX_VALUE = 65536
MAX_ARG = 4096

resource_name = values.dns_label
slug = values.slug
env_name = values.env_var_name
image_ref = values.image_ref
git_url = values.git_url
branch = values.git_ref


def container_env_name(value: str) -> str:
    """A name in a container's own environment (compose ``environment``), as Docker and Compose take it:
    also '.' and '-' after the first character (Elasticsearch's ``discovery.type``)."""
    if not values.CONTAINER_ENV_NAME_RE.fullmatch(value):
        raise ValueError("a container's variable name is [A-Za-z_][A-Za-z0-9_.-]* (at most 128 characters)")
    return value


def _carried(value: str, limit: int, what: str, where: str) -> str:
    """Text passed to Docker as data (never through a shell): up to ``limit`` characters, and no NUL, the one
    character that cannot be carried."""
    if len(value) > limit:
        raise ValueError(f"{what} is at most {limit} characters")
    if "\x00" in value:
        raise ValueError(f"NUL characters are not allowed in {where}")
    return value


def env_value(value: str) -> str:
    """A variable's value."""
    return _carried(value, MAX_VALUE, "a value", "a value")


_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL_LOCAL_RE = re.compile(rf"^{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*$")
MAX_EMAIL = 254
_ANY_CASE_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# What :func:`email` accepts, for the OpenAPI (``format: email`` with it): a dot-atom local part of at most
# 64, an '@', a host name of two labels or more, any case, the last not all digits, an optional final dot.
# The whole is 3-254 characters (``minLength``/``maxLength``), which keeps the domain within 253.
EMAIL_PATTERN = (
    rf"^(?=[^@]{{1,64}}@){_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*"
    rf"@(?:{_ANY_CASE_LABEL}\.)+(?![0-9]+\.?$){_ANY_CASE_LABEL}\.?$"
)


def email(value: str) -> str:
    """An e-mail address (RFC 5321 dot-atom local part, RFC 1123 domain), lowercased; ASCII only."""
    printable_ascii(value, "an e-mail address")
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


DESCRIPTION_PATTERN = r"^[^\u0000-\u0008\u000b-\u001f\u007f]*$"  # what description() accepts, for the OpenAPI


def description(value: str) -> str:
    """Free text for people: any character but the control ones (newline and tab are fine)."""
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in value):
        raise ValueError("control characters (other than newline and tab) are not allowed")
    return value


# What a display name may not hold: control characters (C0, DEL, C1), soft hyphens, invisible format and
# direction marks, line and paragraph separators, a byte-order mark, lone surrogates. The OpenAPI documents
# the same rule as ``DISPLAY_NAME_PATTERN`` (the characters, and at least one that is not a space).
_HIDDEN = (
    r"\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    r"\ud800-\udfff\ufeff\ufff9-\ufffb"
)
_HIDDEN_RE = re.compile(f"[{_HIDDEN}]")
DISPLAY_NAME_PATTERN = rf"^[^{_HIDDEN}]*[^\s{_HIDDEN}][^{_HIDDEN}]*$"


def display_name(value: str) -> str:
    """A person's name as shown: no control or invisible characters (``DISPLAY_NAME_PATTERN``), trimmed."""
    if _HIDDEN_RE.search(value):
        raise ValueError("control characters (newline, tab, ...) are not allowed in a name")
    value = value.strip()
    if not value:
        raise ValueError("a name needs at least one visible character")
    return value


def argv_item(value: str) -> str:
    """One element of a container command (an argv list: no shell ever parses it)."""
    return _carried(value, MAX_ARG, "a command argument", "a command")


def hostname(value: str) -> str:
    """A public host name (RFC 1123, at least two labels, not an IP address), lowercased, a trailing dot
    dropped; internationalised names must be given in punycode."""
    host = values.host_name(value.removesuffix("."))
    labels = host.split(".")
    if len(labels) < 2:
        raise ValueError("a host name needs at least two labels (e.g. app.example.com)")
    if labels[-1].isdigit():
        raise ValueError("an IP address is not a host name")
    return host


def domain_host(value: str) -> str:
    """A custom domain: a public host name (:func:`hostname`), or a wildcard ``*.example.com`` whose ``*``
    stands for one label (served by one router for every such name; its certificate needs DNS-01, checked
    with the application's HTTPS options)."""
    if value.startswith(values.WILDCARD_PREFIX):
        return values.WILDCARD_PREFIX + hostname(value[len(values.WILDCARD_PREFIX) :])
    return hostname(value)


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
    printable_ascii(value, "a path")
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
