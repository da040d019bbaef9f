"""The AsyncAPI 3.0 document generated from the catalogue: complete, self-contained, valid, and true to the wire."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import httpx
import jsonschema
import nats
import pytest

from berth_common.asyncapi import asyncapi_document, reply_model
from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import REGISTRY, HealthReply, PingService
from tests.api.conftest import bearer

# The official AsyncAPI 3.0.0 JSON Schema (npm package @asyncapi/specs 6.11.1, schemas/3.0.0-without-$id.json,
# Apache-2.0), gzipped.
SPEC_SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json.gz"


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(json.dumps(asyncapi_document("nats://berthuser:hunter2pw@127.0.0.1:4999")))


def resolve(doc: dict, ref: str):
    assert ref.startswith("#/"), f"external or relative $ref {ref!r}"
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def payload_validator(doc: dict, message_key: str) -> jsonschema.Draft202012Validator:
    """Validate against one message's payload, resolving ``#/components/...`` in the whole document."""
    root = {**doc, "$ref": f"#/components/messages/{message_key}/payload"}
    return jsonschema.Draft202012Validator(root)


def test_is_asyncapi_3_and_valid_against_the_official_schema(doc):
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    schema = json.loads(gzip.decompress(SPEC_SCHEMA.read_bytes()))
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]
    assert errors == []
    broken = json.loads(json.dumps(doc))
    next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2 wording: must be rejected
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_server_hides_credentials(doc):
    assert doc["servers"]["nats"] == {**doc["servers"]["nats"], "host": "127.0.0.1:4999", "protocol": "nats"}
    assert "hunter2pw" not in json.dumps(doc) and "berthuser" not in json.dumps(doc)


def test_a_cluster_url_names_its_first_node():
    doc = asyncapi_document("nats://u:pw@n1.example:4222, nats://u:pw@n2.example:4223")
    assert doc["servers"]["nats"]["host"] == "n1.example:4222"
    assert "pw" not in json.dumps(doc["servers"])


def test_every_catalogue_entry_has_channel_message_schema_and_operations(doc):
    schemas, messages = doc["components"]["schemas"], doc["components"]["messages"]
    for type_, cls in REGISTRY.items():
        message = messages[type_]
        assert message["name"] == type_
        assert message["x-berth-schema-version"] == cls.SCHEMA_VERSION
        data_ref = message["payload"]["allOf"][1]["properties"]["data"]["$ref"]
        assert resolve(doc, data_ref) is schemas[cls.__name__]
        assert set(schemas[cls.__name__].get("properties", {})) == set(cls.model_fields)
        channel = doc["channels"][type_]
        assert channel["messages"][type_] == {"$ref": f"#/components/messages/{type_}"}
        if cls.KIND == "query":
            assert channel["address"] == "rpc.{service}." + type_.removeprefix("rpc.")
            assert channel["parameters"]["service"]["enum"] == list(cls.CONSUMERS)
        elif type_ != "evt.log.line":
            assert channel["address"] == type_
        for service in cls.PRODUCERS:
            op = doc["operations"][f"{service}.send.{type_}"]
            assert op["action"] == "send" and op["channel"] == {"$ref": f"#/channels/{type_}"}
        for service in cls.CONSUMERS:
            assert doc["operations"][f"{service}.receive.{type_}"]["action"] == "receive"
        if cls.KIND == "query":
            reply = doc["operations"][f"{cls.CONSUMERS[0]}.receive.{type_}"]["reply"]
            assert resolve(doc, reply["channel"]["$ref"])["address"] is None
            assert resolve(doc, reply["messages"][0]["$ref"])
    assert doc["channels"]["evt.log.line"]["address"] == "log.{deployment_id}"
    expected_ops = sum(len(c.PRODUCERS) + len(c.CONSUMERS) for c in REGISTRY.values())
    assert len(doc["operations"]) == expected_ops


def test_every_ref_resolves_inside_the_document(doc):
    all_refs = list(refs(doc))
    assert len(all_refs) > len(REGISTRY) * 3
    for ref in all_refs:
        resolve(doc, ref)
    assert "$defs" not in json.dumps(doc)


def test_reply_models_are_found():
    assert reply_model(REGISTRY["rpc.health"]) is HealthReply
    assert reply_model(REGISTRY["rpc.replicas"]).__name__ == "ReplicasReply"


def test_payload_schema_accepts_real_envelopes_and_rejects_wrong_ones(doc):
    bus = Bus("api", "nats://127.0.0.1:1")  # envelopes are built without connecting
    env = json.loads(bus.envelope(PingService(nonce="n1")).to_bytes())
    v = payload_validator(doc, "cmd.system.ping")
    assert list(v.iter_errors(env)) == []
    assert list(v.iter_errors({**env, "type": "cmd.build.start"}))
    assert list(v.iter_errors({**env, "data": {}}))  # nonce is required
    assert list(v.iter_errors({k: x for k, x in env.items() if k != "id"}))

    reply = {"ok": True, "data": HealthReply(service="api", ready=True, components={"db": True}).model_dump()}
    rv = payload_validator(doc, "rpc.health.reply")
    assert list(rv.iter_errors(reply)) == []
    assert list(rv.iter_errors({"ok": True, "data": {"service": "api"}}))


async def test_document_describes_what_is_on_the_wire(doc, nats_server, unique):
    """A command published by the real Bus validates against its documented payload and headers."""
    nc = await nats.connect(nats_server.url)
    got: asyncio.Queue = asyncio.Queue()

    async def on_msg(m):
        got.put_nowait(m)

    await nc.subscribe("cmd.system.ping", cb=on_msg)
    await subscriptions_confirmed(nc)
    bus = Bus("api", nats_server.url)
    await bus.connect()
    try:
        await bus.publish(PingService(nonce=unique))
        msg = await asyncio.wait_for(got.get(), 10)
    finally:
        await bus.close()
        await nc.close()
    assert list(payload_validator(doc, "cmd.system.ping").iter_errors(json.loads(msg.data))) == []
    headers_schema = {**doc, "$ref": "#/components/messages/cmd.system.ping/headers"}
    assert list(jsonschema.Draft202012Validator(headers_schema).iter_errors(dict(msg.headers))) == []
    assert set(msg.headers) >= {"Nats-Msg-Id", "Ce-Type", "Ce-Source"}


async def test_api_serves_the_document(client, api):
    r = await client.get("/asyncapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == json.loads(json.dumps(asyncapi_document(api.settings.nats_url)))
    openapi = (await client.get("/openapi.json")).json()
    assert openapi["openapi"].startswith("3.") and "/v1/me" in openapi["paths"]
    assert "/asyncapi.json" in openapi["paths"]
    # No token needed for either document; the same client with a token gets the same answer.
    assert (await client.get("/asyncapi.json", headers=bearer(api.admin_token()))).json() == r.json()
    assert isinstance(httpx.URL(api.url).port, int)
