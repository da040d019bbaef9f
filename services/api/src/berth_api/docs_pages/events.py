"""The event catalogue: the AsyncAPI document of the bus (``berth_common.asyncapi``, the same document
``/asyncapi.json`` serves) as one HTML page a person reads: every message by kind, with its subject, who
sends and who handles it, its schema version, what it means and the fields of its ``data``."""

from __future__ import annotations

import re
from collections import defaultdict
from html import escape
from typing import Any

from starlette.responses import HTMLResponse

from berth_api.docs_pages import layout

KINDS = (
    ("event", "Events"),
    ("command", "Commands"),
    ("query", "Queries"),
)
SCHEMAS = "#/components/schemas/"
_PYTHON_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
_CODE = re.compile(r"``(.+?)``|`([^`]+)`")

# (id(document), root) -> the page: the document is made once per api, so is its page
_pages: dict[tuple[int, str], str] = {}


def page(document: dict[str, Any], root: str = "") -> HTMLResponse:
    """The catalogue page of ``document``; ``root`` is the path the api is mounted under."""
    key = (id(document), root)
    html = _pages.get(key)
    if html is None:
        _pages.clear()
        main = f'<main class="catalogue">\n{render(document)}\n</main>'
        html = _pages[key] = layout.html("Berth event catalogue", root, "/events", main)
    return layout.respond(html)


def render(document: dict[str, Any]) -> str:
    """The catalogue as HTML (every text from the document escaped), without the page around it."""
    info = document.get("info", {})
    messages: dict[str, Any] = document.get("components", {}).get("messages", {})
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    parties = _parties(document.get("operations", {}))
    by_kind: dict[str, list[str]] = defaultdict(list)
    for key, message in sorted(messages.items()):
        by_kind[str(message.get("x-berth-kind", "reply"))].append(key)

    body: list[str] = [
        f"<h1>{escape(str(info.get('title', 'Events')))} <small>{escape(str(info.get('version', '')))}</small></h1>",
        _prose(str(info.get("description", ""))),
        _servers(document.get("servers", {})),
        '<nav aria-label="Messages"><ul class="toc">',
    ]
    for kind, title in KINDS:
        body.append(f'<li><a href="#{kind}">{title}</a> ({len(by_kind[kind])})</li>')
    body.append("</ul></nav>")
    for kind, title in KINDS:
        body.append(f'<h2 id="{kind}">{title}</h2>')
        body.append('<ul class="toc">')
        body += [f'<li><a href="#{_anchor(k)}"><code>{escape(k)}</code></a></li>' for k in by_kind[kind]]
        body.append("</ul>")
        for key in by_kind[kind]:
            body.append(_message(key, messages, document.get("channels", {}), schemas, parties[key]))
    return "\n".join(body)


def _anchor(key: str) -> str:
    return "m-" + key.replace(".", "-")


def _parties(operations: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """message key -> {"send": [service, ...], "receive": [...]} from the operation keys
    (``<service>.<action>.<message>``)."""
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"send": [], "receive": []})
    for key, op in operations.items():
        service, action, message = key.split(".", 2)
        if action in ("send", "receive") and op.get("action") == action:
            found[message][action].append(service)
    return found


def _servers(servers: dict[str, Any]) -> str:
    rows = [
        f"<li><code>{escape(str(s.get('protocol', '')))}://{escape(str(s.get('host', '')))}</code>: "
        f"{_CODE.sub(_code, escape(str(s.get('description', '')), quote=False))}</li>"
        for s in servers.values()
    ]
    return f"<ul>{''.join(rows)}</ul>" if rows else ""


def _message(
    key: str,
    messages: dict[str, Any],
    channels: dict[str, Any],
    schemas: dict[str, Any],
    parties: dict[str, list[str]],
) -> str:
    message = messages[key]
    address = channels.get(key, {}).get("address") or key
    sends = ", ".join(parties["send"]) or "nobody"
    handles = ", ".join(parties["receive"]) or "nobody"
    verb = "asked by" if message.get("x-berth-kind") == "query" else "sent by"
    parts = [
        f'<section class="message" id="{_anchor(key)}" aria-labelledby="{_anchor(key)}-h">',
        f'<h3 id="{_anchor(key)}-h"><code>{escape(key)}</code></h3>',
        f'<p class="meta">Subject <code>{escape(str(address))}</code> · {escape(str(message.get("title", "")))}'
        f" v{escape(str(message.get('x-berth-schema-version', 1)))} · {verb} {escape(sends)} · "
        f"handled by {escape(handles)}</p>",
        _prose(str(message.get("description", message.get("summary", "")))),
    ]
    data = _data_schema(message, schemas)
    if data is not None:
        parts.append(_fields(data, "Fields of <code>data</code>"))
    reply = _reply_schema(key, schemas, messages)
    if reply is not None:
        parts.append(_fields(reply, "Fields of the answer's <code>data</code>"))
    parts.append("</section>")
    return "\n".join(parts)


def _data_schema(message: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of the envelope's ``data`` (the message's own fields)."""
    for part in message.get("payload", {}).get("allOf", []):
        ref = part.get("properties", {}).get("data", {}).get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMAS):
            found = schemas.get(ref.removeprefix(SCHEMAS))
            return found if isinstance(found, dict) else None
    return None


def _reply_schema(key: str, schemas: dict[str, Any], messages: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of a query's answer (the ``ok`` branch of its reply message)."""
    reply = messages.get(f"{key}.reply")
    if not isinstance(reply, dict):
        return None
    for branch in reply.get("payload", {}).get("oneOf", []):
        properties = branch.get("properties", {})
        ref = properties.get("data", {}).get("$ref")
        if properties.get("ok", {}).get("const") is True and isinstance(ref, str):
            found = schemas.get(ref.removeprefix(SCHEMAS))
            return found if isinstance(found, dict) else None
    return None


def _prose(text: str) -> str:
    """Docstring text as paragraphs (the lines of one paragraph joined), with `code` set as code."""
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{_CODE.sub(_code, escape(p, quote=False))}</p>" for p in paragraphs)


def _code(match: re.Match[str]) -> str:
    return f"<code>{match.group(1) or match.group(2)}</code>"


def _fields(schema: dict[str, Any], caption: str) -> str:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return '<p class="meta">No fields.</p>'
    required = set(schema.get("required", []))
    rows = [
        "<tr>"
        f"<td><code>{escape(name)}</code></td>"
        f"<td><code>{escape(type_name(prop))}</code></td>"
        f"<td>{'yes' if name in required else 'no'}</td>"
        f"<td>{escape(str(prop.get('description', '')))}</td>"
        "</tr>"
        for name, prop in properties.items()
    ]
    return (
        f'<table><caption class="meta">{caption}</caption>'
        '<thead><tr><th scope="col">field</th><th scope="col">type</th><th scope="col">required</th>'
        '<th scope="col">meaning</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def type_name(schema: Any) -> str:
    """A JSON schema's type as Python spells it: ``str``, ``list[Step]``, ``int | None``, ``"web" | "worker"``."""
    if not isinstance(schema, dict):
        return "any"
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "const" in schema:
        return repr(schema["const"]).replace("'", '"')
    if "enum" in schema:
        return " | ".join(repr(v).replace("'", '"') for v in schema["enum"])
    for union in ("anyOf", "oneOf", "allOf"):
        if union in schema:
            joiner = " & " if union == "allOf" else " | "
            return joiner.join(type_name(s) for s in schema[union])
    kind = schema.get("type")
    if kind == "array":
        return f"list[{type_name(schema.get('items', {}))}]"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"dict[str, {type_name(schema['additionalProperties'])}]"
    if isinstance(kind, str) and kind in _PYTHON_TYPES:
        return _PYTHON_TYPES[kind]
    if isinstance(kind, list):
        return " | ".join(_PYTHON_TYPES.get(str(k), str(k)) for k in kind)
    return str(kind or "any")
