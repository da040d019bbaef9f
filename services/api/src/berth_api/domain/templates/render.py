"""Rendering a template: every variable gets its value (user-supplied, default or generated from an
injected random source), then the compose text and files get their references replaced.

Rendering is deterministic given the source, so tests compare exact output; :class:`SystemSource` draws
from :mod:`secrets` (a CSPRNG). With ``by_reference`` a secret variable is not written into the compose
text: it becomes the compose interpolation ``${NAME}`` and its value travels as a secret variable of the
application, so the file on disk never holds it in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from berth_api.domain.templates.format import order
from berth_api.domain.templates.model import (
    ALPHABETS,
    REFERENCE,
    SECRET_KINDS,
    Template,
    TemplateError,
    Variable,
    references,
)


class Source(Protocol):
    """Where randomness and time come from."""

    def token_bytes(self, n: int) -> bytes: ...

    def choice(self, alphabet: str) -> str: ...

    def randbelow(self, n: int) -> int: ...

    def now(self) -> datetime: ...


class SystemSource:
    """The production source: :mod:`secrets` and the clock."""

    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)

    def choice(self, alphabet: str) -> str:
        return secrets.choice(alphabet)

    def randbelow(self, n: int) -> int:
        return secrets.randbelow(n)

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class HostRoute:
    variable: str
    host: str
    service: str
    port: int | None
    path: str | None


@dataclass(frozen=True)
class Rendered:
    compose: str
    values: Mapping[str, str]
    secret: frozenset[str]
    hosts: tuple[HostRoute, ...]
    files: Mapping[str, str] = field(default_factory=dict)

    referenced: tuple[str, ...] = ()
    modes: Mapping[str, int] = field(default_factory=dict)  # the files' own permission bits, by path

    def env(self) -> list[tuple[str, str, bool]]:
        """(name, value, secret) of the variables the compose text references by name (``${NAME}``)."""
        return [(name, self.values[name], name in self.secret) for name in self.referenced]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_hs256(secret: str, payload: Mapping[str, Any]) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(dict(payload), separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(signature)}"


def render(
    template: Template,
    source: Source,
    *,
    app: str,
    overrides: Mapping[str, str] | None = None,
    generate_host: Callable[[Variable], str] | None = None,
    by_reference: bool | Callable[[Variable], bool] = False,
    loc: str = "/body/variables",
) -> Rendered:
    """Values for every variable and the compose text with its references replaced. ``by_reference``
    (True: the secret variables; or a predicate) names the variables written as the compose interpolation
    ``${NAME}`` instead of their value, for their value to travel in the application's variables."""
    overrides = dict(overrides or {})
    for name in overrides:
        if template.variable(name) is None:
            raise TemplateError(f"{loc}/{name}", "not a variable of this template")
    values: dict[str, str] = {}
    secret: set[str] = set()
    first_domain = next((v.name for v in template.variables if v.kind == "domain"), None)

    def sub(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            token = m.group(0)
            if token == "$$":
                return token
            if m.group(1) == "app":
                return app
            name = first_domain if m.group(1) == "domain" else m.group(2)
            return values[str(name)]

        return REFERENCE.sub(one, text)

    for v in order(template):
        if v.name in overrides:
            values[v.name] = overrides[v.name]
        else:
            values[v.name] = _value(v, source, sub, generate_host, f"{loc}/{v.name}")
        derived = any(
            (first_domain if r == "domain" else r) in secret for _, text in v.templates() for r in references(text)
        )
        if v.secret or (v.secret is None and (v.kind in SECRET_KINDS or derived)):
            secret.add(v.name)

    def referenced(name: str) -> bool:
        if callable(by_reference):
            variable = template.variable(name)
            return variable is not None and by_reference(variable)
        return by_reference and name in secret

    used: dict[str, None] = {}

    def out(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            token = m.group(0)
            if token == "$$":
                return token
            name = first_domain if m.group(1) == "domain" else m.group(2)
            if name is not None and referenced(name):
                used[name] = None
                return "${" + name + "}"
            return sub(token)

        return REFERENCE.sub(one, text)

    hosts = tuple(
        HostRoute(v.name, values[v.name], r.service, r.port, r.path) for v in template.variables for r in v.routes
    )
    files = {f.path: sub(f.content) for f in template.files}
    compose = out(template.compose)
    modes = {f.path: f.mode for f in template.files if f.mode is not None}
    return Rendered(compose, values, frozenset(secret), hosts, files, tuple(used), modes)


def _value(
    v: Variable,
    source: Source,
    sub: Callable[[str], str],
    generate_host: Callable[[Variable], str] | None,
    loc: str,
) -> str:
    o = v.options
    if v.kind == "password":
        alphabet = str(o.get("alphabet", "alnum"))
        chars = ALPHABETS.get(alphabet, alphabet)
        return "".join(source.choice(chars) for _ in range(int(o.get("length", 32))))
    if v.kind == "base64":
        return base64.b64encode(source.token_bytes(int(o.get("bytes", 32)))).decode()
    if v.kind == "hex":
        if "length" in o:
            length = int(o["length"])
            return source.token_bytes((length + 1) // 2).hex()[:length]
        return source.token_bytes(int(o.get("bytes", 32))).hex()
    if v.kind == "uuid":
        raw = bytearray(source.token_bytes(16))
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        return str(uuid.UUID(bytes=bytes(raw)))
    if v.kind == "port":
        low, high = int(o.get("min", 10000)), int(o.get("max", 60999))
        return str(low + source.randbelow(high - low + 1))
    if v.kind == "timestamp":
        at = o.get("at")
        when = datetime.fromisoformat(str(at)) if at else source.now()
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp()
        return str(int(seconds * 1000) if o.get("unit") == "ms" else int(seconds))
    if v.kind == "jwt":
        now = int(source.now().timestamp())
        payload: dict[str, Any] = {}
        if o.get("issued_at", True):
            payload["iat"] = now
        if o.get("expires_in_days"):
            payload["exp"] = now + int(o["expires_in_days"]) * 86400
        for key, value in (o.get("payload") or {}).items():
            payload[key] = sub(value) if isinstance(value, str) else value
        return jwt_hs256(sub(str(o["key"])), payload)
    if v.kind == "value":
        return sub(str(o["value"]))
    if v.kind == "domain":
        if o.get("default"):
            return sub(str(o["default"]))
        if generate_host is None:
            raise TemplateError(loc, "a domain is required")
        return generate_host(v)
    if o.get("default") is not None:  # input
        return sub(str(o["default"]))
    if o.get("required"):
        raise TemplateError(loc, "a value is required")
    return ""
