"""Local fakes of the third-party endpoints the notifier talks to, on 127.0.0.1.

Each HTTP receiver accepts what the real API accepts and refuses the rest with the real API's status:
Slack incoming webhooks (Block Kit shape and limits), Discord webhooks (embed limits), the Telegram bot
API ``sendMessage`` (token in the path, HTML parse mode with only the supported tags and entities) and a
generic webhook that verifies ``X-Berth-Signature`` and the timestamp and rejects replays. A ``script`` of
answers (status codes, ``(status, headers)``, or ``"hang"`` to never answer) is played before the normal
answer.
The SMTP receiver (a real aiosmtpd server) is in ``tests.notifier.smtp``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import html.parser
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

HANG = "hang"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _is_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 3000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class HttpReceiver:
    """A small aiohttp server; subclasses implement ``check`` (problems) and ``accept`` (the 2xx answer)."""

    METHOD = "POST"  # the method it answers ("*": every method)

    def __init__(self, script: list[Any] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[Received] = []  # every request
        self.accepted: list[Received] = []  # requests answered with success
        self.problems: list[str] = []  # why requests were refused
        self._release = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> HttpReceiver:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route(self.METHOD, "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = Received(request.path_qs, dict(request.headers), body, time.monotonic())
        self.requests.append(rec)
        try:
            if self.script:
                step = self.script.pop(0)
                if step == HANG:
                    await self._release.wait()
                    return web.Response(status=504)
                status, headers = step if isinstance(step, tuple) else (int(step), {})
                return web.Response(status=status, text=f"scripted failure for {request.path}", headers=headers)
            problems = self.check(request, body)
            if problems:
                self.problems += problems
                return self.refuse(problems)
            self.accepted.append(rec)
            return self.accept(rec)
        finally:
            async with self._arrived:
                self._arrived.notify_all()

    async def wait_accepted(self, n: int, timeout: float = 10.0) -> list[Received]:
        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.accepted) >= n)

        await asyncio.wait_for(enough(), timeout)
        return self.accepted

    async def wait_requests(self, n: int, timeout: float = 10.0) -> list[Received]:
        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.requests) >= n)

        await asyncio.wait_for(enough(), timeout)
        return self.requests

    def check(self, request: web.Request, body: bytes) -> list[str]:
        return []

    def refuse(self, problems: list[str]) -> web.Response:
        return web.json_response({"error": problems[0]}, status=400)

    def accept(self, rec: Received) -> web.Response:
        return web.Response(status=200, text="ok")


def _json_object(request: web.Request, body: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    if not request.content_type == "application/json":
        return None, [f"content type {request.content_type}"]
    try:
        data = json.loads(body)
    except ValueError:
        return None, ["invalid_payload: not JSON"]
    if not isinstance(data, dict):
        return None, ["invalid_payload: not an object"]
    return data, []


# --- Slack ---------------------------------------------------------------------------------------------

SLACK_TEXT_KEYS = {"plain_text": {"type", "text", "emoji"}, "mrkdwn": {"type", "text", "verbatim"}}


def slack_text_problems(
    obj: Any, where: str, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")
) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"{where}: a text object of type {kinds}"]
    out = []
    if set(obj) - SLACK_TEXT_KEYS[obj["type"]]:
        out.append(f"{where}: unknown keys {set(obj) - SLACK_TEXT_KEYS[obj['type']]}")
    text = obj.get("text")
    if not isinstance(text, str) or not 1 <= units(text) <= limit:
        out.append(f"{where}.text: 1..{limit} characters")
    return out


def slack_problems(data: dict[str, Any]) -> list[str]:
    """The rules of incoming webhooks and Block Kit (https://api.slack.com/reference/block-kit/blocks)."""
    out: list[str] = []
    if set(data) - {"text", "blocks", "attachments", "thread_ts", "mrkdwn", "unfurl_links", "unfurl_media"}:
        out.append(f"unknown top-level keys {set(data)}")
    if "text" in data and (not isinstance(data["text"], str) or units(data["text"]) > 40000):
        out.append("text: a string of at most 40000 characters")
    if not data.get("text") and not data.get("blocks"):
        return [*out, "no_text"]
    blocks = data.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return [*out, "invalid_blocks: at most 50 blocks"]
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "header":
            out += slack_text_problems(block.get("text"), where, 150, ("plain_text",))
            extra = set(block) - {"type", "text", "block_id"}
        elif kind == "section":
            extra = set(block) - {"type", "text", "fields", "accessory", "block_id"}
            if "text" not in block and "fields" not in block:
                out.append(f"{where}: text or fields")
            if "text" in block:
                out += slack_text_problems(block["text"], where, 3000)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    out.append(f"{where}.fields: 1..10 items")
                else:
                    for j, f in enumerate(fields):
                        out += slack_text_problems(f, f"{where}.fields[{j}]", 2000)
        elif kind == "actions":
            extra = set(block) - {"type", "elements", "block_id"}
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                out.append(f"{where}.elements: 1..25 items")
                continue
            for j, el in enumerate(elements):
                if not isinstance(el, dict) or el.get("type") != "button":
                    out.append(f"{where}.elements[{j}]: only buttons here")
                    continue
                out += slack_text_problems(el.get("text"), f"{where}.elements[{j}]", 75, ("plain_text",))
                if "url" in el and not _is_url(el["url"]):
                    out.append(f"{where}.elements[{j}].url: a URL of at most 3000 characters")
        elif kind == "context":
            extra = set(block) - {"type", "elements", "block_id"}
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                out.append(f"{where}.elements: 1..10 items")
                continue
            for j, el in enumerate(elements):
                out += slack_text_problems(el, f"{where}.elements[{j}]", 3000)
        elif kind == "divider":
            extra = set(block) - {"type", "block_id"}
        else:
            out.append(f"{where}: unsupported block type {kind!r}")
            continue
        if extra:
            out.append(f"{where}: unknown keys {extra}")
    return out


class SlackReceiver(HttpReceiver):
    """``POST /services/T../B../...`` like hooks.slack.com: ``ok`` or 400 ``invalid_blocks``/``no_text``."""

    def check(self, request: web.Request, body: bytes) -> list[str]:
        if not request.path.startswith("/services/"):
            return ["no_service"]
        data, problems = _json_object(request, body)
        return problems or slack_problems(data or {})

    def refuse(self, problems: list[str]) -> web.Response:
        status = 404 if problems == ["no_service"] else 400
        return web.Response(status=status, text=problems[0].split(":")[0])

    def url(self, token: str = "T000/B000/XXXXXXXX") -> str:
        return f"{self.base}/services/{token}"


# --- Discord -------------------------------------------------------------------------------------------


def discord_problems(data: dict[str, Any]) -> list[str]:
    """Webhook execute limits (https://discord.com/developers/docs/resources/webhook#execute-webhook)."""
    out: list[str] = []
    allowed = {"content", "username", "avatar_url", "tts", "embeds", "allowed_mentions", "flags", "thread_name"}
    if set(data) - allowed:
        out.append(f"unknown keys {set(data) - allowed}")
    if "content" in data and (not isinstance(data["content"], str) or units(data["content"]) > 2000):
        out.append("content: at most 2000 characters")
    name = data.get("username")
    if name is not None and (not isinstance(name, str) or not 1 <= units(name) <= 80 or "discord" in name.lower()):
        out.append("username: 1..80 characters, not containing 'discord'")
    embeds = data.get("embeds", [])
    if not data.get("content") and not embeds:
        out.append("content or embeds required")
    if not isinstance(embeds, list) or len(embeds) > 10:
        return [*out, "embeds: at most 10"]
    total = 0
    for i, e in enumerate(embeds):
        where = f"embeds[{i}]"
        keys = {
            "title",
            "type",
            "description",
            "url",
            "timestamp",
            "color",
            "footer",
            "image",
            "thumbnail",
            "author",
            "fields",
        }
        if not isinstance(e, dict) or set(e) - keys:
            out.append(f"{where}: unknown keys")
            continue
        for key, limit in (("title", 256), ("description", 4096)):
            if key in e:
                if not isinstance(e[key], str) or units(e[key]) > limit:
                    out.append(f"{where}.{key}: at most {limit} characters")
                else:
                    total += units(e[key])
        if "url" in e and not _is_url(e["url"]):
            out.append(f"{where}.url: a URL")
        if "color" in e and (not isinstance(e["color"], int) or not 0 <= e["color"] <= 0xFFFFFF):
            out.append(f"{where}.color: an integer 0..16777215")
        if "timestamp" in e:
            try:
                dt.datetime.fromisoformat(e["timestamp"])
            except (TypeError, ValueError):
                out.append(f"{where}.timestamp: ISO 8601")
        if "footer" in e:
            text = e["footer"].get("text") if isinstance(e["footer"], dict) else None
            if not isinstance(text, str) or units(text) > 2048:
                out.append(f"{where}.footer.text: at most 2048 characters")
            else:
                total += units(text)
        fields = e.get("fields", [])
        if not isinstance(fields, list) or len(fields) > 25:
            out.append(f"{where}.fields: at most 25")
            continue
        for j, f in enumerate(fields):
            name_, value = f.get("name"), f.get("value")
            if not isinstance(name_, str) or not 1 <= units(name_) <= 256:
                out.append(f"{where}.fields[{j}].name: 1..256 characters")
            if not isinstance(value, str) or not 1 <= units(value) <= 1024:
                out.append(f"{where}.fields[{j}].value: 1..1024 characters")
            if "inline" in f and not isinstance(f["inline"], bool):
                out.append(f"{where}.fields[{j}].inline: a boolean")
            total += units(str(name_)) + units(str(value))
    if total > 6000:
        out.append("embeds: more than 6000 characters in all")
    mentions = data.get("allowed_mentions")
    if mentions is not None and not set(mentions.get("parse", [])) <= {"roles", "users", "everyone"}:
        out.append("allowed_mentions.parse: roles, users, everyone")
    return out


class DiscordReceiver(HttpReceiver):
    """``POST /api/webhooks/<id>/<token>``: 204, or 400 ``Invalid Form Body`` (code 50035)."""

    def __init__(
        self,
        script: list[Any] | None = None,
        webhook_id: str = "123456789012345678",
        token: str = "discord-token",
    ) -> None:
        super().__init__(script)
        self.webhook_id, self.token = webhook_id, token

    def url(self) -> str:
        return f"{self.base}/api/webhooks/{self.webhook_id}/{self.token}"

    def check(self, request: web.Request, body: bytes) -> list[str]:
        if request.path != f"/api/webhooks/{self.webhook_id}/{self.token}":
            return ["Unknown Webhook"]
        data, problems = _json_object(request, body)
        return problems or discord_problems(data or {})

    def refuse(self, problems: list[str]) -> web.Response:
        if problems == ["Unknown Webhook"]:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        return web.json_response({"message": "Invalid Form Body", "code": 50035, "errors": problems}, status=400)

    def accept(self, rec: Received) -> web.Response:
        return web.Response(status=204)


# --- Telegram ------------------------------------------------------------------------------------------

TELEGRAM_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
TELEGRAM_ENTITIES = {"lt", "gt", "amp", "quot"}


class TelegramHtml(html.parser.HTMLParser):
    """Telegram's HTML mode: supported tags only, properly nested, and only the four named entities."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.visible: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS:
            self.problems.append(f"Unsupported start tag {tag!r}")
        if tag == "a" and not any(k == "href" and v for k, v in attrs):
            self.problems.append("a without href")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"Unexpected end tag {tag!r}")

    def handle_data(self, data: str) -> None:
        if any(c in data for c in "<>&"):
            self.problems.append("unescaped <, > or &")
        self.visible.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in TELEGRAM_ENTITIES:
            self.problems.append(f"Unsupported entity &{name};")
        self.visible.append({"lt": "<", "gt": ">", "amp": "&", "quot": '"'}.get(name, "?"))

    def handle_charref(self, name: str) -> None:
        self.visible.append("?")


def telegram_problems(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    chat_id = data.get("chat_id")
    if not (isinstance(chat_id, int) and not isinstance(chat_id, bool)) and not (
        isinstance(chat_id, str) and chat_id.startswith("@")
    ):
        out.append("Bad Request: chat_id is an integer or @channelusername")
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        return [*out, "Bad Request: message text is empty"]
    if data.get("parse_mode") not in (None, "HTML", "MarkdownV2", "Markdown"):
        out.append("Bad Request: unsupported parse_mode")
    visible = text
    if data.get("parse_mode") == "HTML":
        parser = TelegramHtml()
        parser.feed(text)
        parser.close()
        if parser.stack:
            parser.problems.append(f"Unclosed tags {parser.stack}")
        out += [f"Bad Request: can't parse entities: {p}" for p in parser.problems]
        visible = "".join(parser.visible)
    if units(visible) > 4096:
        out.append("Bad Request: message is too long")
    lpo = data.get("link_preview_options")
    if lpo is not None and (not isinstance(lpo, dict) or not isinstance(lpo.get("is_disabled", False), bool)):
        out.append("Bad Request: link_preview_options")
    return out


class TelegramReceiver(HttpReceiver):
    """``POST /bot<token>/sendMessage`` like api.telegram.org: ``{"ok": true, "result": ...}``."""

    def __init__(self, token: str, script: list[Any] | None = None) -> None:
        super().__init__(script)
        self.token = token

    def check(self, request: web.Request, body: bytes) -> list[str]:
        if request.path != f"/bot{self.token}/sendMessage":
            return ["Unauthorized"]
        data, problems = _json_object(request, body)
        return problems or telegram_problems(data or {})

    def refuse(self, problems: list[str]) -> web.Response:
        code = 401 if problems == ["Unauthorized"] else 400
        return web.json_response({"ok": False, "error_code": code, "description": problems[0]}, status=code)

    def accept(self, rec: Received) -> web.Response:
        data = rec.json
        result = {"message_id": len(self.accepted), "date": int(time.time()), "chat": {"id": data["chat_id"]}}
        return web.json_response({"ok": True, "result": result})


# --- generic webhook -----------------------------------------------------------------------------------


class WebhookReceiver(HttpReceiver):
    """Verifies the HMAC over ``"<timestamp>.<body>"``, refuses stale timestamps and replayed signatures."""

    def __init__(self, secret: str, script: list[Any] | None = None, tolerance_s: float = 300) -> None:
        super().__init__(script)
        self.secret, self.tolerance_s = secret, tolerance_s
        self.seen: set[str] = set()

    def url(self, path: str = "/hooks/berth") -> str:
        return f"{self.base}{path}"

    def check(self, request: web.Request, body: bytes) -> list[str]:
        ts, sig = request.headers.get("X-Berth-Timestamp", ""), request.headers.get("X-Berth-Signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > self.tolerance_s:
            return ["stale or missing timestamp"]
        expected = "sha256=" + hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig):
            return ["bad signature"]
        if sig in self.seen:
            return ["replay"]
        self.seen.add(sig)
        data, problems = _json_object(request, body)
        missing = {"id", "type", "time", "data"} - set(data or {})
        return problems or ([f"missing {sorted(missing)}"] if missing else [])

    def refuse(self, problems: list[str]) -> web.Response:
        return web.json_response({"error": problems[0]}, status=409 if problems == ["replay"] else 401)

    def accept(self, rec: Received) -> web.Response:
        return web.Response(status=202)
