"""Channel targets (pure): validation, the split into public settings and secrets, and a safe hint.

Error messages name the field and never quote the value (a value may be a secret).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter

from berth_common.catalogue import ChannelTarget
from berth_common.catalogue.notifications import NOTIFY_EMAIL_PATTERN
from berth_common.outbound import HostError, OutboundPolicy
from berth_common.values import HOST_NAME_RE

SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "slack": ("webhook_url",),
    "discord": ("webhook_url",),
    "email": ("password",),
    "telegram": ("bot_token",),
    "webhook": ("url", "signing_secret"),
}
REQUIRED_SECRETS: dict[str, tuple[str, ...]] = {
    "slack": ("webhook_url",),
    "discord": ("webhook_url",),
    "email": (),
    "telegram": ("bot_token",),
    "webhook": ("url", "signing_secret"),
}
HOST_RE = HOST_NAME_RE
EMAIL_RE = re.compile(NOTIFY_EMAIL_PATTERN)
TELEGRAM_TOKEN_RE = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$")
TELEGRAM_CHAT_RE = re.compile(r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,63})$")
DISCORD_PATH_RE = re.compile(r"^/api(/v[0-9]+)?/webhooks/[0-9]{1,30}/[A-Za-z0-9_-]{1,200}$")
CONTROL = re.compile(r"[\x00-\x20\x7f]")
TARGET_ADAPTER: TypeAdapter[Any] = TypeAdapter(ChannelTarget)


class FieldError(ValueError):
    """Bad input in one field; ``field`` is the dotted path in the request."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target_host(host: str, field: str, policy: OutboundPolicy) -> None:
    """Refuse a host (as written) that the outbound rule refuses: the reason names the rule, not the value
    (a webhook URL is a secret; the address it names is not quoted either)."""
    try:
        refusal = policy.check_host(host)
    except HostError as exc:
        raise FieldError(field, f"names a host that {exc}") from None
    if refusal is not None:
        raise FieldError(field, f"names a host the outbound rule refuses ({refusal.rule}; an admin can allow it)")


def check_http_url(url: str, field: str, policy: OutboundPolicy) -> str:
    if CONTROL.search(url):
        raise FieldError(field, "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FieldError(field, "is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise FieldError(field, "must be an http:// or https:// URL")
    host = parts.hostname or ""
    if not host or not (HOST_RE.fullmatch(host) or _is_ip(host)):
        raise FieldError(field, "must name a valid host")
    if port == 0:
        raise FieldError(field, "has an invalid port")
    if parts.fragment:
        raise FieldError(field, "must not have a #fragment")
    check_target_host(host, field, policy)
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_email(addr: str, field: str) -> None:
    if not EMAIL_RE.fullmatch(addr):
        raise FieldError(field, "is not a valid e-mail address")


def validate(kind: str, settings: dict[str, Any], secrets: dict[str, str], policy: OutboundPolicy) -> None:
    """Check a complete channel configuration (after an update is merged); ``policy``: the team's outbound
    policy, applied to the host as written (the sender checks the addresses it resolves to)."""
    for name in REQUIRED_SECRETS[kind]:
        if not secrets.get(name):
            raise FieldError(f"target.{name}", "is required")
    if kind in ("slack", "discord"):
        url = check_http_url(secrets["webhook_url"], "target.webhook_url", policy)
        if kind == "discord" and not DISCORD_PATH_RE.fullmatch(urlsplit(url).path):
            raise FieldError("target.webhook_url", "must be a Discord webhook URL (/api/webhooks/<id>/<token>)")
    elif kind == "webhook":
        check_http_url(secrets["url"], "target.url", policy)
        if len(secrets["signing_secret"]) < 16:
            raise FieldError("target.signing_secret", "must be at least 16 characters")
    elif kind == "telegram":
        if not TELEGRAM_TOKEN_RE.fullmatch(secrets["bot_token"]):
            raise FieldError("target.bot_token", "is not a Telegram bot token (<digits>:<token>)")
        if not TELEGRAM_CHAT_RE.fullmatch(settings["chat_id"]):
            raise FieldError("target.chat_id", "must be a numeric chat id or @channelname")
    elif kind == "email":
        _validate_email(settings, secrets, policy)


def _validate_email(settings: dict[str, Any], secrets: dict[str, str], policy: OutboundPolicy) -> None:
    host = settings["host"]
    if not (HOST_RE.fullmatch(host) or _is_ip(host)):
        raise FieldError("target.host", "must be a host name or an IP address")
    check_target_host(host, "target.host", policy)
    _check_email(settings["from_addr"], "target.from_addr")
    for i, addr in enumerate(settings["to_addrs"]):
        _check_email(addr, f"target.to_addrs.{i}")
    username = settings.get("username")
    if username is not None and (not username or CONTROL.search(username)):
        raise FieldError("target.username", "must not be empty or contain spaces or control characters")
    if secrets.get("password") and not username:
        raise FieldError("target.username", "is required with a password")
    if secrets.get("password") and settings["security"] == "plain" and not _is_loopback(host):
        raise FieldError("target.security", "a password is only sent over TLS (starttls or tls) to a remote host")


def split(target: Any) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(kind, public settings, secrets given) from a catalogue target; secrets left None are absent."""
    data = target.model_dump(mode="json")
    kind = data.pop("kind")
    secrets = {}
    for name in SECRET_FIELDS[kind]:
        value = data.pop(name, None)
        if value is not None:
            secrets[name] = value
    return kind, data, secrets


def merge(
    kind: str, old_settings: dict[str, Any], old_secrets: dict[str, str], target: Any | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply an update's target onto a stored channel: secrets the update omits are kept."""
    if target is None:
        return old_settings, old_secrets
    new_kind, settings, secrets = split(target)
    if new_kind != kind:
        raise FieldError("target.kind", "a channel's kind cannot change: create another channel")
    return settings, {**old_secrets, **secrets}


def hint(kind: str, settings: dict[str, Any], secrets: dict[str, str]) -> str:
    """Where messages go, without a secret: a host, a mail server and recipients, a chat."""
    if kind in ("slack", "discord", "webhook"):
        url = secrets.get("webhook_url") or secrets.get("url") or ""
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}" if kind == "webhook" else f"{host}{port}"
    if kind == "email":
        return f"{settings['host']}:{settings['port']} -> {', '.join(settings['to_addrs'])}"[:300]
    if kind == "telegram":
        return f"chat {settings['chat_id']}"
    return kind
