"""Sending one message to one channel: HTTP (Slack, Discord, Telegram, webhook) and SMTP.

Every failure becomes a :class:`SendError` that says whether a retry can help. Error text is built here
and passed through :func:`redact` with the channel's secrets, so a webhook URL or a bot token never
reaches the delivery log, a reply or a log line. Redirects are not followed (a secret URL stays put).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
import httpx

from berth_common.outbound import HostError, OutboundPolicy
from berth_common.outbound_net import OutboundRefused, connected_socket
from berth_notifier.domain import chat, mail
from berth_notifier.domain.notice import Notice
from berth_notifier.domain.policy import retry_after

MAX_BODY = 2048


class SendError(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SendConfig:
    timeout_s: float
    policy: OutboundPolicy
    telegram_api_url: str
    smtp_ca_file: Path | None
    max_retry_after_s: float


def fragments(value: str) -> set[str]:
    """A secret and the pieces of it an error text may quote: a URL's path, query, credentials and its
    path segments that look like ids or tokens (a digit, or 10+ characters); a token's ``:`` parts."""
    found = {value}
    parts = urlsplit(value) if "://" in value else None
    if parts is not None and parts.netloc:
        found |= {parts.path, parts.query, parts.fragment, parts.netloc.rpartition("@")[0]}
        found |= {seg for seg in parts.path.split("/") if any(c.isdigit() for c in seg) or len(seg) >= 10}
    found |= {piece for piece in value.split(":") if len(piece) >= 10}
    return {f for f in found if len(f) >= 4 and f != "/"}


def redact(text: str, secrets: Iterable[str]) -> str:
    pieces: set[str] = set()
    for value in secrets:
        if value:
            pieces |= fragments(value)
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def guard(url: str, policy: OutboundPolicy) -> None:
    """Refuse a target whose host, as written, the outbound rule refuses (the connection checks every
    address the name resolves to again: :func:`berth_common.outbound_net.guarded_client`)."""
    try:
        refusal = policy.check_url(url)
    except HostError as exc:
        raise SendError(f"the target host {exc}", retryable=False) from None
    if refusal is not None:
        raise SendError(refusal.reason, retryable=False)


def _retry_after_of(resp: httpx.Response, body: bytes, cfg: SendConfig) -> float | None:
    found = retry_after(resp.headers.get("retry-after"), datetime.now(UTC), cfg.max_retry_after_s)
    if found is not None:
        return found
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict):
        value = data.get("retry_after") or (data.get("parameters") or {}).get("retry_after")
        if isinstance(value, (int, float)) and value >= 0:
            return float(min(value, cfg.max_retry_after_s))
    return None


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], cfg: SendConfig
) -> tuple[int, bytes]:
    """POST and classify: 2xx returns; 408/425/429/5xx and network errors are retryable; other 4xx not."""
    try:
        async with asyncio.timeout(cfg.timeout_s):
            async with client.stream("POST", url, content=body, headers=headers) as resp:
                received = b""
                async for chunk in resp.aiter_bytes():
                    received += chunk
                    if len(received) >= MAX_BODY:
                        break
    except TimeoutError:
        raise SendError(f"no answer within {cfg.timeout_s:g} s", retryable=True) from None
    except OutboundRefused as exc:
        raise SendError(exc.reason, retryable=False) from None
    except httpx.HTTPError as exc:
        raise SendError(f"{type(exc).__name__}: {exc}", retryable=True) from None
    received = received[:MAX_BODY]
    status = resp.status_code
    if 200 <= status < 300:
        return status, received
    excerpt = " ".join(received[:300].decode("utf-8", "replace").split())
    message = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if status == 429:
        raise SendError(message, retryable=True, retry_after_s=_retry_after_of(resp, received, cfg))
    if status in (408, 425) or status >= 500:
        raise SendError(message, retryable=True, retry_after_s=_retry_after_of(resp, received, cfg))
    raise SendError(message, retryable=False)


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Berth-Notifier/1"}


async def send(
    attempt: int,
    kind: str,
    settings: dict[str, Any],
    secrets: dict[str, str],
    notice: Notice,
    delivery_id: str,
    client: httpx.AsyncClient,
    cfg: SendConfig,
) -> None:
    try:
        if kind == "slack":
            guard(secrets["webhook_url"], cfg.policy)
            await post(client, secrets["webhook_url"], _json(chat.slack(notice)), JSON_HEADERS, cfg)
        elif kind == "discord":
            guard(secrets["webhook_url"], cfg.policy)
            payload = chat.discord(notice, settings.get("username"))
            await post(client, secrets["webhook_url"], _json(payload), JSON_HEADERS, cfg)
        elif kind == "telegram":
            url = f"{cfg.telegram_api_url.rstrip('/')}/bot{secrets['bot_token']}/sendMessage"
            _, body = await post(client, url, _json(chat.telegram(notice, settings["chat_id"])), JSON_HEADERS, cfg)
            try:
                ok = json.loads(body).get("ok") is True
            except (ValueError, AttributeError):
                ok = False
            if not ok:
                raise SendError("Telegram did not confirm the message", retryable=True)
        elif kind == "webhook":
            guard(secrets["url"], cfg.policy)
            body = mail.webhook_body(notice, delivery_id, attempt)
            headers = mail.webhook_headers(secrets["signing_secret"], int(time.time()), body, notice, delivery_id)
            await post(client, secrets["url"], body, headers, cfg)
        elif kind == "email":
            await send_email(settings, secrets, notice, cfg)
        else:
            raise SendError(f"unknown channel kind {kind}", retryable=False)
    except SendError as exc:
        exc.message = redact(exc.message, secrets.values())
        raise
    except Exception as exc:  # an unexpected failure: report its type and redacted text, retry
        raise SendError(redact(f"{type(exc).__name__}: {exc}", secrets.values()), retryable=True) from None


async def send_email(settings: dict[str, Any], secrets: dict[str, str], notice: Notice, cfg: SendConfig) -> None:
    message = mail.email_message(notice, settings["from_addr"], list(settings["to_addrs"]))
    security = settings.get("security", "starttls")
    try:
        async with asyncio.timeout(cfg.timeout_s):
            sock = await connected_socket(settings["host"], int(settings["port"]), cfg.policy)
            await aiosmtplib.send(
                message,
                hostname=settings["host"],
                sock=sock,
                username=settings.get("username") or None,
                password=secrets.get("password") or None,
                use_tls=security == "tls",
                start_tls=security == "starttls",
                timeout=cfg.timeout_s,
                cert_bundle=str(cfg.smtp_ca_file) if cfg.smtp_ca_file else None,
            )
    except TimeoutError:
        raise SendError(f"SMTP server gave no answer within {cfg.timeout_s:g} s", retryable=True) from None
    except OutboundRefused as exc:
        raise SendError(exc.reason, retryable=False) from None
    except HostError as exc:
        raise SendError(f"the SMTP host {exc}", retryable=False) from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        raise SendError(
            f"SMTP refused every recipient ({codes})", retryable=all(400 <= c < 500 for c in codes)
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise SendError(f"SMTP {exc.code}: {exc.message[:200]}", retryable=400 <= exc.code < 500) from None
    except aiosmtplib.SMTPException as exc:
        raise SendError(f"SMTP: {type(exc).__name__}: {exc}", retryable=True) from None
    except OSError as exc:
        raise SendError(f"SMTP connection failed: {type(exc).__name__}: {exc}", retryable=True) from None
