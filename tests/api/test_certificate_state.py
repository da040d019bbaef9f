"""The certificate state of each host: proxy-sync's certificate events published on the real bus, the state
read back through ``GET /v1/applications/{id}/certificates``; a redelivered event has no second effect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from berth_common.bus import Bus
from berth_common.catalogue import CertificateExpiring, CertificateFailed, CertificateIssued
from tests.api.conftest import WEB_APP, make_app
from tests.api.test_certificates import _body
from tests.api.test_projects import problem
from tests.api.tls_certs import pki

SHOP = "shop.example.com"
WWW = f"www.{SHOP}"
APP = {**WEB_APP, "services": [{**WEB_APP["services"][0], "domains": [SHOP, WWW]}, WEB_APP["services"][1]]}
NOT_BEFORE = datetime(2026, 12, 1, tzinfo=UTC)
NOT_AFTER = NOT_BEFORE + timedelta(days=90)
ISSUER = "CN=Pebble Intermediate CA 4a2bc1,O=Pebble"
PRINT = ":".join(["AB"] * 32)
DNS_REASON = f"{SHOP} resolves to 203.0.113.9, not to this server (198.51.100.7): no certificate was asked for"


@pytest.fixture
async def proxy_sync(nats_server, api) -> AsyncIterator[Bus]:
    """proxy-sync's side of the bus (its events), connected after the api declared the streams."""
    bus = Bus("proxy-sync", nats_server.url)
    await bus.connect()
    yield bus
    await bus.close()


async def _states(client, headers, app_id: str) -> list[dict]:
    r = await client.get(f"/v1/applications/{app_id}/certificates", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json())


async def _until(client, headers, app_id: str, check: Callable[[dict[str, dict]], bool]) -> dict[str, dict]:
    deadline = time.monotonic() + 10
    while True:
        states = {f"{s['host']}@{s['server_id']}": s for s in await _states(client, headers, app_id)}
        if check(states):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"the certificate state never matched: {states}")
        await asyncio.sleep(0.05)


def _issued(team: str, app: str, host: str = SHOP, **changes) -> CertificateIssued:
    values = {
        "host": host,
        "server_id": "local",
        "route_id": f"{app}-web",
        "team_id": team,
        "application_id": app,
        "source": "acme",
        "issuer": ISSUER,
        "not_before": NOT_BEFORE,
        "not_after": NOT_AFTER,
        "domains": [host],
        "fingerprint_sha256": PRINT,
        **changes,
    }
    return CertificateIssued.model_validate(values)


async def test_issued_failed_and_expiring_become_each_hosts_state(client, members, proxy_sync, api_urls):
    app = await make_app(client, members.developer, APP)
    team = (await client.get("/v1/me", headers=members.viewer)).json()["team"]["id"]
    generated = app["services"][0]["hosts"][0]
    pending = await _states(client, members.viewer, app["id"])
    assert [(s["host"], s["status"], s["server_id"]) for s in pending] == [
        (generated, "pending", None),
        (SHOP, "pending", None),
        (WWW, "pending", None),
    ]
    assert pending[1] == {
        "host": SHOP,
        "server_id": None,
        "status": "pending",
        "source": None,
        "issuer": None,
        "not_before": None,
        "not_after": None,
        "domains": [],
        "fingerprint_sha256": None,
        "last_error": None,
        "expiring": None,
        "updated_at": None,
    }
    problem(await client.get(f"/v1/applications/{app['id']}/certificates", headers=members.other), 404)

    # The DNS check failed first: the reason is shown as sent.
    failed = CertificateFailed(host=SHOP, team_id=team, application_id=app["id"], stage="dns", reason=DNS_REASON)
    failed_env = proxy_sync.envelope(failed)
    await proxy_sync.publish_raw("evt.certificate.failed", failed_env.to_bytes(), {"Nats-Msg-Id": "a-" + failed_env.id})
    states = await _until(client, members.viewer, app["id"], lambda s: f"{SHOP}@local" in s)
    shop = states[f"{SHOP}@local"]
    assert shop["status"] == "failed" and shop["issuer"] is None
    assert (shop["last_error"]["stage"], shop["last_error"]["reason"]) == ("dns", DNS_REASON)

    # Then the certificate came.
    await proxy_sync.publish(_issued(team, app["id"]))
    states = await _until(client, members.viewer, app["id"], lambda s: s[f"{SHOP}@local"]["status"] == "issued")
    shop = states[f"{SHOP}@local"]
    assert {k: shop[k] for k in ("source", "issuer", "domains", "fingerprint_sha256")} == {
        "source": "acme",
        "issuer": ISSUER,
        "domains": [SHOP],
        "fingerprint_sha256": PRINT,
    }
    assert datetime.fromisoformat(shop["not_before"]) == NOT_BEFORE
    assert datetime.fromisoformat(shop["not_after"]) == NOT_AFTER
    assert shop["last_error"]["reason"] == DNS_REASON  # the last error stays readable; the status says it is over

    # The failure delivered again (same envelope id) has no second effect; a sentinel on the same consumer.
    await proxy_sync.publish_raw("evt.certificate.failed", failed_env.to_bytes(), {"Nats-Msg-Id": "b-" + failed_env.id})
    sentinel = CertificateFailed(host=WWW, team_id=team, application_id=app["id"], stage="acme", reason="rate limited")
    await proxy_sync.publish(sentinel)
    states = await _until(client, members.viewer, app["id"], lambda s: f"{WWW}@local" in s)
    assert states[f"{SHOP}@local"]["status"] == "issued"
    assert states[f"{WWW}@local"]["status"] == "failed"
    assert states[f"{WWW}@local"]["last_error"]["stage"] == "acme"
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        seen = await conn.fetchval("SELECT count(*) FROM api.processed_messages WHERE message_id = $1", failed_env.id)
    finally:
        await conn.close()
    assert seen == 1

    # Near its end and not renewed; then renewed.
    expiring = CertificateExpiring(
        domain=SHOP,
        domains=[SHOP],
        expires_at=NOT_AFTER,
        days_left=6.5,
        issuer=ISSUER,
        team_id=team,
        application_id=app["id"],
        reason="the ACME server did not answer",
    )
    await proxy_sync.publish(expiring)
    states = await _until(client, members.viewer, app["id"], lambda s: s[f"{SHOP}@local"]["status"] == "expiring")
    warned = states[f"{SHOP}@local"]["expiring"]
    assert (warned["days_left"], warned["reason"]) == (6.5, "the ACME server did not answer")
    renewed_until = NOT_AFTER + timedelta(days=60)
    await proxy_sync.publish(
        _issued(team, app["id"], not_after=renewed_until, fingerprint_sha256=PRINT.replace("AB", "CD"))
    )
    states = await _until(client, members.viewer, app["id"], lambda s: s[f"{SHOP}@local"]["status"] == "issued")
    assert datetime.fromisoformat(states[f"{SHOP}@local"]["not_after"]) == renewed_until


async def test_each_server_has_its_own_state_and_another_teams_reports_are_not_shown(
    client, members, proxy_sync, api_urls
):
    app = await make_app(client, members.developer, APP)
    team = (await client.get("/v1/me", headers=members.viewer)).json()["team"]["id"]
    uploaded = await _upload(client, members.developer, app["id"])
    await proxy_sync.publish(_issued("f" * 32, "e" * 32, host=WWW))  # a report naming another team, first
    await proxy_sync.publish(
        _issued(team, app["id"], source="custom", fingerprint_sha256=uploaded["fingerprint_sha256"])
    )
    await proxy_sync.publish(_issued(team, app["id"], server_id="edge-1", issuer="CN=Other CA"))
    states = await _until(client, members.viewer, app["id"], lambda s: f"{SHOP}@edge-1" in s and f"{SHOP}@local" in s)
    assert states[f"{SHOP}@local"]["source"] == "custom"
    assert states[f"{SHOP}@edge-1"]["issuer"] == "CN=Other CA"
    assert states[f"{WWW}@None"]["status"] == "pending"
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        other = await conn.fetchval("SELECT team_id FROM api.certificate_states WHERE host = $1", WWW)
    finally:
        await conn.close()
    assert other == "f" * 32  # recorded, and not shown to this team


async def _upload(client, headers, app_id: str, name: str = "shop", hosts: list[str] | None = None) -> dict:
    ca = pki()
    body = _body(ca.leaf([SHOP, WWW]), [ca.intermediate], name=name, hosts=hosts)
    r = await client.post("/v1/certificates", headers=headers, json={**body, "application_id": app_id})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_a_deleted_certificate_is_no_longer_shown_served_or_failing_and_a_late_report_of_it_is_dropped(
    client, members, proxy_sync, api_urls
):
    app = await make_app(client, members.developer, APP)
    team = (await client.get("/v1/me", headers=members.viewer)).json()["team"]["id"]
    first = await _upload(client, members.developer, app["id"], "one")
    second = await _upload(client, members.developer, app["id"], "two", hosts=[SHOP])
    for server in ("local", "edge-1"):
        await proxy_sync.publish(
            _issued(team, app["id"], source="custom", server_id=server, fingerprint_sha256=first["fingerprint_sha256"])
        )
    await proxy_sync.publish(_issued(team, app["id"], host=WWW, source="acme"))  # ACME's: not the upload's
    for host, server in ((WWW, "edge-1"), (SHOP, "edge-2")):  # an upload not served there
        failed = CertificateFailed(
            host=host,
            server_id=server,
            team_id=team,
            application_id=app["id"],
            source="custom",
            stage="custom",
            reason="the uploaded certificate is not served",
        )
        await proxy_sync.publish(failed)
    states = await _until(
        client,
        members.viewer,
        app["id"],
        lambda s: {f"{SHOP}@local", f"{SHOP}@edge-1", f"{WWW}@local", f"{WWW}@edge-1", f"{SHOP}@edge-2"} <= set(s),
    )
    assert states[f"{SHOP}@edge-1"]["status"] == "issued"

    assert (await client.delete(f"/v1/certificates/{first['id']}", headers=members.admin)).status_code == 204
    after = {(s["host"], s["server_id"]): s["status"] for s in await _states(client, members.viewer, app["id"])}
    generated = app["services"][0]["hosts"][0]
    # the deleted one's failure on WWW is forgotten; SHOP's stays: the second certificate, still held, lists it
    assert after == {(generated, None): "pending", (SHOP, "edge-2"): "failed", (WWW, "local"): "issued"}

    # its reports delivered late (after the deletion) are dropped, an issue as a failure; one of the
    # certificate still held is shown
    await proxy_sync.publish(_issued(team, app["id"], source="custom", fingerprint_sha256=first["fingerprint_sha256"]))
    await proxy_sync.publish(failed.model_copy(update={"host": WWW, "server_id": "edge-3"}))
    await proxy_sync.publish(
        _issued(team, app["id"], source="custom", server_id="edge-1", fingerprint_sha256=second["fingerprint_sha256"])
    )
    states = await _until(client, members.viewer, app["id"], lambda s: f"{SHOP}@edge-1" in s)
    assert states[f"{SHOP}@edge-1"]["fingerprint_sha256"] == second["fingerprint_sha256"]
    assert f"{SHOP}@local" not in states and f"{WWW}@edge-3" not in states
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        rows = await conn.fetch("SELECT host, server_id FROM api.certificate_states ORDER BY host, server_id")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [(SHOP, "edge-1"), (SHOP, "edge-2"), (WWW, "local")]


def test_the_status_follows_from_what_came_last():
    from berth_api.domain.tls import status_of

    now = datetime(2027, 1, 1, tzinfo=UTC)
    t1, t2 = now - timedelta(hours=2), now - timedelta(hours=1)
    issued = {"issued_at": t1, "not_after": now + timedelta(days=30), "error_at": None, "expiring_at": None}
    assert status_of(None, now) == "pending"
    assert status_of({**issued, "issued_at": None, "not_after": None}, now) == "pending"
    assert status_of(issued, now) == "issued"
    assert status_of({**issued, "error_at": t2}, now) == "failed"
    assert status_of({**issued, "error_at": t1 - timedelta(seconds=1)}, now) == "issued"
    assert status_of({**issued, "expiring_at": t2}, now) == "expiring"
    assert status_of({**issued, "not_after": now}, now) == "expired"
