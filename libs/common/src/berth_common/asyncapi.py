"""The AsyncAPI 3.0 document of the bus, generated from the message catalogue.

One channel and one message per catalogue entry (the channel address is the NATS subject), the
payload described as the CloudEvents envelope whose ``data`` is the message's JSON schema, and one
``send`` / ``receive`` operation per producing / consuming service. Queries are request/reply
operations on ``rpc.<service>.<name>`` with a reply on the requester's inbox. Every ``$ref`` points
inside the document (pydantic ``$defs`` are hoisted into ``components/schemas``).

``berth bus spec`` prints it and the api serves it at ``/asyncapi.json``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from berth_common.catalogue import REGISTRY, SERVICES, HealthReply, Message
from berth_common.envelope import Envelope

ASYNCAPI_VERSION = "3.0.0"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
SCHEMAS = "#/components/schemas/"
ENVELOPE_SCHEMA = "CloudEventsEnvelope"
HEADERS_SCHEMA = "NatsHeaders"
RPC_ERROR_SCHEMA = "RpcError"
_COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")

# The reply model of a query: its ``REPLY`` class attribute if it has one, else this map, else the
# model named like the query with ``Reply`` for ``Query`` in the same module (HealthQuery -> HealthReply).
REPLIES: dict[str, type[BaseModel]] = {"rpc.health": HealthReply}

# Messages published on a subject other than their type: type -> (address, {parameter: description}).
ADDRESSES: dict[str, tuple[str, dict[str, str]]] = {
    "evt.log.line": ("log.{deployment_id}", {"deployment_id": "Id of the deployment the line belongs to."}),
}

_KIND_TEXT = {
    "command": "Command on the JetStream work-queue stream (`cmd.>`): exactly one consuming service handles it.",
    "event": "Event on the JetStream events stream (`evt.>`): every subscribing service receives it.",
    "query": "Query over core NATS request/reply; the answer goes to the requester's inbox.",
    "reply": "Reply to a query.",
}

_PARTY_TEXT = {
    "cli": "the `berth` command",
    "operator": "a person or a tool outside Berth's services (monitoring, the `nats` command)",
}


def asyncapi_document(
    nats_url: str = DEFAULT_NATS_URL, registry: Mapping[str, type[Message]] | None = None
) -> dict[str, Any]:
    """Build the document. ``nats_url`` names the server (credentials in it are never included)."""
    entries = REGISTRY if registry is None else registry
    schemas: dict[str, Any] = {
        ENVELOPE_SCHEMA: _envelope_schema(),
        HEADERS_SCHEMA: _headers_schema(),
        RPC_ERROR_SCHEMA: _rpc_error_schema(),
    }
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    for type_, cls in sorted(entries.items()):
        key = _component_key(type_)
        data_ref = _hoist(cls, schemas)
        messages[key] = _message(cls, data_ref)
        channels[key] = _channel(cls, key)
        reply: dict[str, Any] | None = None
        if cls.KIND == "query":
            reply = _add_reply(cls, key, schemas, messages, channels)
        for action, services in (("send", cls.PRODUCERS), ("receive", cls.CONSUMERS)):
            for service in services:
                operations[_component_key(f"{service}.{action}.{type_}")] = _operation(action, service, cls, key, reply)

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Berth bus",
            "version": _version(),
            "description": (
                "Every message Berth's services exchange over NATS. Each message travels in a CloudEvents 1.0 "
                "envelope (structured JSON); `type` is the catalogue name, `schemaversion` its schema version. "
                "Integrators may subscribe to `evt.>` (read-only). Commands that fail every delivery are moved "
                "to `dlq.<subject>` and announced by `evt.bus.dead_lettered`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"nats": _server(nats_url)},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


# --- pieces ------------------------------------------------------------------------------------------


def _version() -> str:
    try:
        return importlib.metadata.version("berth-common")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def _server(nats_url: str) -> dict[str, Any]:
    nats_url = nats_url.split(",", 1)[0].strip()  # a cluster's nodes: the first names the bus
    parts = urlsplit(nats_url if "://" in nats_url else f"nats://{nats_url}")
    host = parts.hostname or "127.0.0.1"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return {
        "host": f"{host}:{parts.port or 4222}",
        "protocol": "nats",
        "description": "NATS with JetStream. Streams: commands `cmd.>`, events `evt.>`, log lines `log.>`.",
    }


def _component_key(name: str) -> str:
    if not _COMPONENT_KEY.fullmatch(name):
        raise ValueError(f"{name!r} cannot be an AsyncAPI component key")
    return name


def _put(schemas: dict[str, Any], name: str, schema: Any) -> None:
    _component_key(name)
    if name in schemas and schemas[name] != schema:
        raise ValueError(f"two different schemas are named {name!r}")
    schemas[name] = schema


def _asyncapi_schema(node: Any) -> Any:
    """pydantic writes OpenAPI's ``discriminator`` object; an AsyncAPI schema takes the property name."""
    if isinstance(node, dict):
        out = {k: _asyncapi_schema(v) for k, v in node.items()}
        disc = out.get("discriminator")
        if isinstance(disc, dict) and isinstance(disc.get("propertyName"), str):
            out["discriminator"] = disc["propertyName"]
        return out
    if isinstance(node, list):
        return [_asyncapi_schema(v) for v in node]
    return node


def _hoist(model: type[BaseModel], schemas: dict[str, Any]) -> str:
    """Add the model's JSON schema (and its ``$defs``) to ``schemas``; return the ``$ref`` to it."""
    schema = _asyncapi_schema(model.model_json_schema(ref_template=SCHEMAS + "{model}"))
    for name, sub in schema.pop("$defs", {}).items():
        _put(schemas, name, sub)
    _put(schemas, model.__name__, schema)
    return SCHEMAS + model.__name__


def _doc(cls: type[Any]) -> str:
    own = cls.__dict__.get("__doc__")
    return inspect.cleandoc(own) if isinstance(own, str) else ""


def _envelope_schema() -> dict[str, Any]:
    schema = Envelope.model_json_schema()
    schema.pop("$defs", None)
    # The wire form (model_dump_json) always carries every attribute.
    schema["required"] = list(schema["properties"])
    schema["description"] = (
        "CloudEvents 1.0 envelope (structured mode). `id` is unique per message and doubles as the JetStream "
        "de-duplication id; `source` is `berth/<service>`; `type` is the catalogue name; `time` is RFC 3339; "
        "`subject` optionally names the resource; `schemaversion` (extension attribute) is the version of the "
        "`data` schema; `data` is the message."
    )
    return schema


def _headers_schema() -> dict[str, Any]:
    def text(description: str) -> dict[str, Any]:
        return {"type": "string", "description": description}

    return {
        "type": "object",
        "description": "NATS message headers.",
        "properties": {
            "Nats-Msg-Id": text("The envelope id: JetStream drops a second publish with the same id."),
            "Ce-Type": text("The envelope type (CloudEvents binding attribute)."),
            "Ce-Source": text("The envelope source."),
            "traceparent": text("W3C trace context: one deploy is one trace across services."),
            "tracestate": text("W3C trace state."),
        },
    }


def _rpc_error_schema() -> dict[str, Any]:
    return {
        "description": "A query that failed in the answering service.",
        "allOf": [
            {"$ref": SCHEMAS + ENVELOPE_SCHEMA},
            {
                "type": "object",
                "properties": {
                    "type": {"const": "rpc.error"},
                    "data": {
                        "type": "object",
                        "properties": {"error": {"type": "string"}},
                        "required": ["error"],
                    },
                },
            },
        ],
    }


def _payload(type_: str, schema_version: int, data_ref: str) -> dict[str, Any]:
    return {
        "allOf": [
            {"$ref": SCHEMAS + ENVELOPE_SCHEMA},
            {
                "type": "object",
                "properties": {
                    "type": {"const": type_},
                    "schemaversion": {"const": schema_version},
                    "data": {"$ref": data_ref},
                },
            },
        ]
    }


def _message(cls: type[Message], data_ref: str) -> dict[str, Any]:
    doc = _doc(cls)
    return {
        "name": cls.TYPE,
        "title": cls.__name__,
        "summary": doc.splitlines()[0] if doc else f"{cls.KIND} {cls.TYPE}",
        "description": "\n\n".join(part for part in (doc, _KIND_TEXT[cls.KIND]) if part),
        "contentType": "application/json",
        "headers": {"$ref": SCHEMAS + HEADERS_SCHEMA},
        "payload": _payload(cls.TYPE, cls.SCHEMA_VERSION, data_ref),
        "tags": [{"name": cls.KIND}],
        "x-berth-kind": cls.KIND,
        "x-berth-schema-version": cls.SCHEMA_VERSION,
    }


def _channel(cls: type[Message], key: str) -> dict[str, Any]:
    channel: dict[str, Any] = {"messages": {key: {"$ref": f"#/components/messages/{key}"}}}
    if cls.KIND == "query":
        name = cls.TYPE.removeprefix("rpc.")
        channel["address"] = "rpc.{service}." + name
        channel["parameters"] = {
            "service": {"enum": list(cls.CONSUMERS), "description": "The service that answers (queue group)."}
        }
        channel["description"] = f"Request subject of the `{name}` query, one per answering service."
    elif cls.TYPE in ADDRESSES:
        address, params = ADDRESSES[cls.TYPE]
        channel["address"] = address
        channel["parameters"] = {p: {"description": d} for p, d in params.items()}
        channel["description"] = f"`{cls.TYPE}` messages are published on `{address}`."
    else:
        channel["address"] = cls.TYPE
        channel["description"] = _KIND_TEXT[cls.KIND]
    return channel


def reply_model(cls: type[Message]) -> type[BaseModel] | None:
    """The model a query is answered with, or None when it cannot be found."""
    declared = getattr(cls, "REPLY", None) or REPLIES.get(cls.TYPE)
    if declared is None and cls.__name__.endswith("Query"):
        module = inspect.getmodule(cls)
        declared = getattr(module, cls.__name__.removesuffix("Query") + "Reply", None)
    return declared if isinstance(declared, type) and issubclass(declared, BaseModel) else None


def _add_reply(
    cls: type[Message],
    key: str,
    schemas: dict[str, Any],
    messages: dict[str, Any],
    channels: dict[str, Any],
) -> dict[str, Any]:
    model = reply_model(cls)
    reply_ref = _hoist(model, schemas) if model is not None else None
    reply_key = _component_key(f"{key}.reply")
    messages[reply_key] = {
        "name": reply_key,
        "title": model.__name__ if model is not None else f"{cls.__name__} reply",
        "summary": f"Answer to {cls.TYPE}",
        "contentType": "application/json",
        "payload": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["ok", "data"],
                    "properties": {
                        "ok": {"const": True},
                        "data": {"$ref": reply_ref} if reply_ref else {"type": "object"},
                    },
                },
                {
                    "type": "object",
                    "required": ["ok", "data"],
                    "properties": {"ok": {"const": False}, "data": {"$ref": SCHEMAS + RPC_ERROR_SCHEMA}},
                },
            ]
        },
        "tags": [{"name": "reply"}],
    }
    channels[reply_key] = {
        "address": None,
        "description": "The requester's NATS inbox (dynamic).",
        "messages": {reply_key: {"$ref": f"#/components/messages/{reply_key}"}},
    }
    return {
        "channel": {"$ref": f"#/channels/{reply_key}"},
        "messages": [{"$ref": f"#/channels/{reply_key}/messages/{reply_key}"}],
    }


def _operation(action: str, service: str, cls: type[Message], key: str, reply: dict[str, Any] | None) -> dict[str, Any]:
    verb = {"send": "publishes" if cls.KIND != "query" else "asks", "receive": "handles"}[action]
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{key}"},
        "messages": [{"$ref": f"#/channels/{key}/messages/{key}"}],
        "summary": f"{service} {verb} {cls.TYPE}",
        "tags": [{"name": service}, {"name": cls.KIND}],
    }
    if service not in SERVICES:
        text = _PARTY_TEXT.get(service, "a party outside Berth's services")
        operation["description"] = f"`{service}`: {text}."
    elif cls.KIND in ("command", "event") and action == "receive":
        operation["description"] = (
            f"Durable pull consumer of `{service}`; acknowledged after the handler's transaction commits."
        )
    if reply is not None:
        operation["reply"] = reply
    return operation
