"""Chat payloads (pure): Slack Block Kit, Discord embeds, Telegram ``sendMessage`` with HTML.

Each stays inside its API's documented limits: Slack header 150, section text 3000, 10 fields of 2000,
50 blocks; Discord title 256, description 4096, 25 fields (name 256, value 1024), 6000 in all; Telegram
4096 characters of text. User text is escaped for each markup, and Discord mentions are disabled.
"""

from __future__ import annotations

import html
import re
from typing import Any

from berth_notifier.domain.notice import Notice
from berth_notifier.domain.text import fit, rows

SLACK_ICONS = {"error": ":red_circle:", "warning": ":warning:", "success": ":white_check_mark:", "info": ":bell:"}
ICONS = {"error": "\U0001f534", "warning": "\u26a0\ufe0f", "success": "\u2705", "info": "\U0001f514"}
DISCORD_COLORS = {"error": 0xD93F0B, "warning": 0xF2C744, "success": 0x2EB67D, "info": 0x5865F2}
DISCORD_MD = re.compile(r"([\\*_~`|>#\[\]])")


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def discord_escape(text: str) -> str:
    return DISCORD_MD.sub(r"\\\1", text)


def telegram_escape(text: str) -> str:
    return html.escape(text, quote=False)


def fallback_text(n: Notice) -> str:
    where = n.where()
    return f"{n.headline()}: {n.summary}" + (f" ({where})" if where else "")


def slack(n: Notice) -> dict[str, Any]:
    """An incoming-webhook body: ``text`` (notifications, screen readers) and ``blocks``."""
    section = fit(n.summary, 1000, slack_escape)
    if n.reason:
        section += "\n*Reason:* " + fit(n.reason, 1900, slack_escape)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": fit(n.headline(), 150), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": section}},
    ]
    fields = [
        {"type": "mrkdwn", "text": f"*{fit(label, 100, slack_escape)}*\n{fit(value, 1800, slack_escape)}"}
        for label, value in rows(n)
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if n.url:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open in Berth"}, "url": n.url}
        blocks.append({"type": "actions", "elements": [button]})
    stamp = int(n.time.timestamp())
    context = f"{slack_escape(n.event_type)} · <!date^{stamp}^{{date_short_pretty}} {{time}}|{n.time.isoformat()}>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    text = fit(f"{SLACK_ICONS[n.severity]} {fallback_text(n)}", 3000, slack_escape)
    return {"text": text, "blocks": blocks}


def discord(n: Notice, username: str | None = None) -> dict[str, Any]:
    """A webhook body with one embed; ``allowed_mentions`` empty so event text can never ping anyone."""
    description = discord_escape(n.summary)
    if n.reason:
        description += "\n**Reason:** " + fit(n.reason, 1500, discord_escape)
    embed: dict[str, Any] = {
        "title": fit(n.headline(), 256),
        "description": fit(description, 2048),
        "color": DISCORD_COLORS[n.severity],
        "fields": [
            {"name": fit(label, 64), "value": fit(value, 200, discord_escape), "inline": True}
            for label, value in rows(n)
        ],
        "timestamp": n.time.isoformat(),
        "footer": {"text": fit(n.event_type, 128)},
    }
    if n.url:
        embed["url"] = n.url
    return {"username": fit(username or "Berth", 80), "embeds": [embed], "allowed_mentions": {"parse": []}}


def telegram_chat_id(chat_id: str) -> int | str:
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id


def telegram(n: Notice, chat_id: str) -> dict[str, Any]:
    """A ``sendMessage`` body with ``parse_mode`` HTML; every piece of event text is escaped."""
    lines = [
        f"{ICONS[n.severity]} <b>{fit(n.headline(), 200, telegram_escape)}</b>",
        fit(n.summary, 500, telegram_escape),
    ]
    if n.reason:
        lines.append(f"<b>Reason:</b> {fit(n.reason, 1000, telegram_escape)}")
    lines += [
        f"<b>{fit(label, 64, telegram_escape)}:</b> {fit(value, 200, telegram_escape)}" for label, value in rows(n)
    ]
    if n.url:
        lines.append(f'<a href="{html.escape(n.url, quote=True)}">Open in Berth</a>')
    return {
        "chat_id": telegram_chat_id(chat_id),
        "text": "\n".join(lines),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
