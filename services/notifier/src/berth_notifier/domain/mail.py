"""E-mail and generic webhook payloads (pure), and the webhook signature.

Webhook receivers verify ``X-Berth-Signature: sha256=<hex>`` = HMAC-SHA256(signing secret,
``"<X-Berth-Timestamp>.<raw body>"``) and reject a timestamp older than a few minutes (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from berth_notifier.domain.notice import Notice
from berth_notifier.domain.text import fit, one_line, rows

SEVERITY_COLORS = {"error": "#d93f0b", "warning": "#b58900", "success": "#2eb67d", "info": "#5865f2"}
SIGNATURE_HEADER = "X-Berth-Signature"
TIMESTAMP_HEADER = "X-Berth-Timestamp"
REPLAY_TOLERANCE_S = 300


def email_subject(n: Notice) -> str:
    where = n.application or n.project or n.team
    return one_line(f"[Berth] {n.headline()}" + (f": {where}" if where else ""), 200)


def email_text(n: Notice) -> str:
    lines = [n.headline(), "", n.summary]
    if n.reason:
        lines += ["", f"Reason: {n.reason}"]
    facts = rows(n)
    if facts:
        lines.append("")
        lines += [f"{label}: {value}" for label, value in facts]
    if n.url:
        lines += ["", f"Open in Berth: {n.url}"]
    lines += ["", "-- ", f"Berth notification ({n.event_type}, {n.time.isoformat()})"]
    return "\n".join(lines) + "\n"


def email_html(n: Notice) -> str:
    e = html.escape
    color = SEVERITY_COLORS[n.severity]
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family:sans-serif;color:#1d1c1d">',
        f'<h2 style="color:{color};margin:0 0 8px">{e(n.headline())}</h2>',
        f"<p>{e(n.summary)}</p>",
    ]
    if n.reason:
        parts.append(f'<p><strong>Reason:</strong> <span style="white-space:pre-wrap">{e(n.reason)}</span></p>')
    facts = rows(n)
    if facts:
        parts.append('<table cellpadding="4" style="border-collapse:collapse">')
        parts += [f'<tr><th align="left">{e(label)}</th><td>{e(value)}</td></tr>' for label, value in facts]
        parts.append("</table>")
    if n.url:
        parts.append(f'<p><a href="{e(n.url, quote=True)}">Open in Berth</a></p>')
    parts.append(f'<p style="color:#616061;font-size:12px">{e(n.event_type)} &middot; {e(n.time.isoformat())}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def email_message(n: Notice, from_addr: str, to_addrs: list[str], *, msgid_domain: str = "berth.local") -> EmailMessage:
    """multipart/alternative: the text part first, then HTML (clients show the last they understand)."""
    msg = EmailMessage()
    msg["Subject"] = email_subject(n)
    msg["From"] = from_addr
    msg["To"] = ", ".join(to_addrs)
    msg["Date"] = format_datetime(n.time)
    msg["Message-ID"] = make_msgid(idstring=n.event_id[:32], domain=msgid_domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Berth-Event"] = one_line(n.event_type, 128)
    msg.set_content(email_text(n))
    msg.add_alternative(email_html(n), subtype="html")
    return msg


def webhook_payload(n: Notice, delivery_id: str, attempt: int = 1) -> dict[str, Any]:
    """``id`` is the event's (dedupe on it); ``attempt`` makes every try's body, hence signature, unique."""
    return {
        "id": n.event_id,
        "delivery_id": delivery_id,
        "attempt": attempt,
        "type": n.event_type,
        "time": n.time.isoformat(),
        "severity": n.severity,
        "title": n.headline(),
        "summary": n.summary,
        "reason": n.reason,
        "url": n.url,
        "team_id": n.team_id,
        "project_id": n.project_id,
        "application_id": n.application_id,
        "deployment_id": n.deployment_id,
        "count": n.count,
        "first_time": n.first_time.isoformat() if n.first_time else None,
        "last_time": n.last_time.isoformat() if n.last_time else None,
        "test": n.test,
        "data": n.facts,
    }


def webhook_body(n: Notice, delivery_id: str, attempt: int = 1) -> bytes:
    """The exact bytes that are signed and sent (compact, keys sorted)."""
    return json.dumps(webhook_payload(n, delivery_id, attempt), sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def webhook_headers(secret: str, timestamp: int, body: bytes, n: Notice, delivery_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Berth-Notifier/1",
        "X-Berth-Event": fit(n.event_type, 128),
        "X-Berth-Delivery": delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify(secret: str, timestamp: str, signature: str, body: bytes, now: float) -> bool:
    """What a receiver does: a fresh timestamp and a matching signature (constant-time comparison)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > REPLAY_TOLERANCE_S:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)
