"""Which git forge sent a webhook delivery, and whether it is signed with the application's secret: pure.

Each forge signs differently (``docs/webhooks.md``): GitHub ``X-Hub-Signature-256: sha256=<hex>``, Gitea,
Forgejo and Gogs a bare hex HMAC-SHA256 in their own header, Bitbucket Cloud and Server
``X-Hub-Signature: sha256=<hex>``, and GitLab sends the secret itself in ``X-Gitlab-Token``. Every MAC is
computed over the raw body bytes as received, before any parsing, and every comparison is constant-time
(``hmac.compare_digest``). A delivery with no signature fails like one with a wrong signature: Berth never
acts on an unverified delivery, whatever the forge.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Forge = Literal["github", "gitlab", "gitea", "forgejo", "gogs", "bitbucket", "bitbucket-server"]
Scheme = Literal["prefixed", "bare", "token"]

FORGES: tuple[Forge, ...] = ("github", "gitlab", "gitea", "forgejo", "gogs", "bitbucket", "bitbucket-server")


@dataclass(frozen=True)
class ForgeHeaders:
    """Where one forge puts its event name, delivery id and signature, and how the signature is written."""

    forge: Forge
    event: str
    delivery: tuple[str, ...]  # the first one present identifies the delivery
    signature: tuple[str, ...]  # the first one present is checked (never the weaker ones after it)
    scheme: Scheme


# Gitea, Forgejo and Gogs also send GitHub's header names (Gitea: X-GitHub-Event, X-Hub-Signature-256), so
# their own headers are looked for first; Bitbucket Cloud and Server share X-Event-Key and differ in the
# request id header.
_HEADERS: tuple[ForgeHeaders, ...] = (
    ForgeHeaders(
        "forgejo", "x-forgejo-event", ("x-forgejo-delivery",), ("x-forgejo-signature", "x-gitea-signature"), "bare"
    ),
    ForgeHeaders("gitea", "x-gitea-event", ("x-gitea-delivery",), ("x-gitea-signature",), "bare"),
    ForgeHeaders("gogs", "x-gogs-event", ("x-gogs-delivery",), ("x-gogs-signature",), "bare"),
    ForgeHeaders("github", "x-github-event", ("x-github-delivery",), ("x-hub-signature-256",), "prefixed"),
    ForgeHeaders(
        "gitlab",
        "x-gitlab-event",
        ("x-gitlab-event-uuid", "idempotency-key", "x-gitlab-webhook-uuid"),
        ("x-gitlab-token",),
        "token",
    ),
    ForgeHeaders("bitbucket", "x-event-key", ("x-request-uuid",), ("x-hub-signature",), "prefixed"),
    ForgeHeaders("bitbucket-server", "x-event-key", ("x-request-id",), ("x-hub-signature",), "prefixed"),
)
MAX_DELIVERY_ID = 128


@dataclass(frozen=True)
class Delivery:
    """A delivery's forge, event name and id as its headers give them (nothing verified yet)."""

    forge: Forge
    event: str
    delivery_id: str | None
    headers: ForgeHeaders

    def signature(self, headers: Mapping[str, str]) -> str | None:
        for name in self.headers.signature:
            value = headers.get(name)
            if value is not None:
                return value
        return None


def identify(headers: Mapping[str, str]) -> Delivery | None:
    """The forge that sent a delivery, from its headers (names lower-case); None: no forge's event header.

    Bitbucket Cloud sends ``X-Request-UUID`` (and ``X-Hook-UUID``); Bitbucket Server ``X-Request-Id``."""
    for spec in _HEADERS:
        event = headers.get(spec.event)
        if event is None:
            continue
        if spec.forge == "bitbucket" and "x-request-uuid" not in headers and "x-hook-uuid" not in headers:
            continue  # Bitbucket Server: the next entry
        delivery_id = next((headers[n] for n in spec.delivery if headers.get(n)), None)
        if delivery_id is not None:
            delivery_id = delivery_id.strip()[:MAX_DELIVERY_ID] or None
        return Delivery(spec.forge, event.strip(), delivery_id, spec)
    return None


def hmac_hex(secret: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``body`` keyed with ``secret`` (what every signing forge sends)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(forge: Forge, secret: str, body: bytes) -> dict[str, str]:
    """The signature header a forge would send for ``body`` (for tests, the benchmark and the docs)."""
    spec = next(h for h in _HEADERS if h.forge == forge)
    name = spec.signature[0]
    if spec.scheme == "token":
        return {name: secret}
    digest = hmac_hex(secret, body)
    return {name: f"sha256={digest}" if spec.scheme == "prefixed" else digest}


def verify(delivery: Delivery, headers: Mapping[str, str], secret: str, body: bytes) -> bool:
    """Whether the delivery carries the right signature (or GitLab's token) for ``secret`` over ``body``.

    Constant-time: the token is compared as SHA-256 digests of both sides (equal lengths whatever is sent),
    a MAC as lower-case hex against the expected one."""
    given = delivery.signature(headers)
    if given is None or not secret:
        return False
    scheme = delivery.headers.scheme
    if scheme == "token":
        expected_token = hashlib.sha256(secret.encode()).digest()
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), expected_token)
    if scheme == "prefixed":
        prefix, _, given = given.partition("=")
        if prefix.strip().lower() != "sha256":
            return False
    expected = hmac_hex(secret, body)
    return hmac.compare_digest(given.strip().lower().encode(), expected.encode())
