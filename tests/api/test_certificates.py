"""Uploaded certificates: real certificates made in the test, each rule of the check answered with a 422
naming the part at fault; the key sealed at rest and never answered; the hosts of an application get the
certificate in the next deployment's spec (the key sealed on the bus, masked in the deployment)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import asyncpg
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from berth_api.adapters.sealed import reseal_all
from berth_api.adapters.secretbox import SecretBox
from berth_common.db import make_engine, make_sessionmaker
from tests.api.conftest import WEB_APP, make_app
from tests.api.test_deployments import SealedAs, _deploy
from tests.api.test_projects import problem
from tests.api.tls_certs import ec_key, fingerprint, issue, key_pem, pki

SHOP = "shop.example.com"
APP = {**WEB_APP, "services": [{**WEB_APP["services"][0], "domains": [SHOP, f"www.{SHOP}"]}, WEB_APP["services"][1]]}


def _body(leaf, chain: list, *, name: str = "shop", hosts: list[str] | None = None, key: str | None = None) -> dict:
    return {
        "name": name,
        "certificate": leaf.pem,
        "chain": "".join(c.pem for c in chain),
        "key": key if key is not None else leaf.key_pem,
        **({"hosts": hosts} if hosts is not None else {}),
    }


async def _refused(client, headers, body: dict, loc: str, *words: str) -> str:
    r = await client.post("/v1/certificates", headers=headers, json=body)
    found = problem(r, 422)
    detail = found["errors"][0]
    assert detail["loc"] == loc, found
    for word in words:
        assert word in detail["detail"], found
    assert body["key"] not in r.text  # the key is never echoed, not even in a refusal
    return str(detail["detail"])


async def test_a_good_certificate_is_stored_with_its_facts_and_the_key_never_shown(client, members, api_urls):
    ca = pki()
    leaf = ca.leaf([SHOP, f"www.{SHOP}"])
    body = _body(leaf, [ca.intermediate], hosts=[SHOP])
    problem(await client.post("/v1/certificates", headers=members.viewer, json=body), 403)
    r = await client.post("/v1/certificates", headers=members.developer, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == {
        "id", "name", "application_id", "hosts", "names", "subject", "issuer", "not_before", "not_after",
        "fingerprint_sha256", "key_type", "created_at",
    }  # fmt: skip
    assert created["hosts"] == [SHOP] and created["names"] == [SHOP, f"www.{SHOP}"]
    assert created["application_id"] is None and created["key_type"] == "ec-secp256r1"
    assert created["issuer"] == "CN=Berth Test Intermediate,O=Berth tests"
    assert created["fingerprint_sha256"] == fingerprint(leaf.cert)
    assert datetime.fromisoformat(created["not_after"]) == leaf.cert.not_valid_after_utc
    assert leaf.key_pem not in r.text and "PRIVATE KEY" not in r.text

    listed = await client.get("/v1/certificates", headers=members.viewer)
    assert listed.json() == [created] and "PRIVATE KEY" not in listed.text
    assert (await client.get(f"/v1/certificates/{created['id']}", headers=members.viewer)).json() == created
    assert (await client.get("/v1/certificates", headers=members.other)).json() == []
    problem(await client.get(f"/v1/certificates/{created['id']}", headers=members.other), 404)
    body = problem(await client.post("/v1/certificates", headers=members.developer, json=body), 409)
    assert body["errors"][0]["loc"] == "/body/name"

    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        sealed = await conn.fetchval("SELECT sealed FROM api.certificates WHERE id = $1", created["id"])
    finally:
        await conn.close()
    assert sealed[:1] == b"\x01" and b"PRIVATE KEY" not in sealed

    problem(await client.delete(f"/v1/certificates/{created['id']}", headers=members.developer), 403)
    problem(await client.delete(f"/v1/certificates/{created['id']}", headers=members.other), 404)
    assert (await client.delete(f"/v1/certificates/{created['id']}", headers=members.admin)).status_code == 204
    problem(await client.get(f"/v1/certificates/{created['id']}", headers=members.viewer), 404)


async def test_each_broken_rule_is_a_422_saying_which(client, members):
    ca = pki()
    leaf = ca.leaf([SHOP])
    dev = members.developer
    ok = _body(leaf, [ca.intermediate], hosts=[SHOP])

    await _refused(client, dev, {**ok, "key": key_pem(ec_key())}, "/body/key", "does not match")
    wrong_order = _body(leaf, [ca.root, ca.intermediate], hosts=[SHOP])
    await _refused(client, dev, wrong_order, "/body/chain", "not in order", "the certificate is not issued")
    not_issuer = _body(leaf, [ca.intermediate, pki().root], hosts=[SHOP])
    await _refused(client, dev, not_issuer, "/body/chain", "intermediate 1 is not issued")
    old = ca.leaf([SHOP], not_before=datetime.now(UTC) - timedelta(days=100), days=10)
    msg = await _refused(client, dev, _body(old, [ca.intermediate], hosts=[SHOP]), "/body/certificate", "expired on")
    assert old.cert.not_valid_after_utc.isoformat() in msg
    early = ca.leaf([SHOP], not_before=datetime.now(UTC) + timedelta(days=3))
    await _refused(client, dev, _body(early, [ca.intermediate], hosts=[SHOP]), "/body/certificate", "not valid yet")
    await _refused(client, dev, {**ok, "hosts": [SHOP, "other.example.com"]}, "/body/hosts/1", "does not cover")
    await _refused(client, dev, {**ok, "certificate": "hello"}, "/body/certificate", "not a PEM certificate")
    await _refused(client, dev, {**ok, "key": "not a key"}, "/body/key", "not a PEM private key")
    locked = {**ok, "key": key_pem(leaf.key, password=b"secret-passphrase")}
    await _refused(client, dev, locked, "/body/key", "without a passphrase")
    small = issue(SHOP, issuer=ca.intermediate, names=[SHOP], key=rsa.generate_private_key(65537, 1024))
    await _refused(client, dev, _body(small, [ca.intermediate], hosts=[SHOP]), "/body/key", "1024 bits")
    await _refused(client, dev, {**ok, "hosts": []}, "/body/hosts", "needs the hosts")
    problem(await client.post("/v1/certificates", headers=dev, json={**ok, "hosts": ["*.example.com"]}), 422)
    problem(await client.post("/v1/certificates", headers=dev, json={**ok, "extra": True}), 422)
    assert (await client.get("/v1/certificates", headers=members.viewer)).json() == []


async def test_wildcards_cover_one_label_and_every_key_type_is_read(client, members):
    ca = pki()
    wild = ca.leaf(["*.example.com"], key=ed25519.Ed25519PrivateKey.generate())
    ok = _body(wild, [ca.intermediate], name="wild", hosts=["app.example.com", "api.example.com"])
    r = await client.post("/v1/certificates", headers=members.developer, json=ok)
    assert r.status_code == 201, r.text
    assert r.json()["key_type"] == "ed25519" and r.json()["names"] == ["*.example.com"]
    for i, host in ((0, "example.com"), (1, "a.b.example.com")):
        body = {**ok, "name": f"wild{i}", "hosts": ["app.example.com", host][: i + 1] if i else [host]}
        await _refused(client, members.developer, body, f"/body/hosts/{i}", f"does not cover {host}")
    rsa_leaf = ca.leaf([SHOP], key=rsa.generate_private_key(65537, 2048))
    r = await client.post(
        "/v1/certificates", headers=members.developer, json=_body(rsa_leaf, [ca.intermediate], name="rsa", hosts=[SHOP])
    )
    assert r.status_code == 201 and r.json()["key_type"] == "rsa-2048", r.text
    full_chain = {**_body(rsa_leaf, [], name="full", hosts=[SHOP]), "certificate": rsa_leaf.pem + ca.intermediate.pem}
    r = await client.post("/v1/certificates", headers=members.developer, json=full_chain)
    assert r.status_code == 201, r.text


async def test_an_applications_certificate_goes_to_its_hosts_in_the_next_deployment(
    client, members, scheduler, api_urls, capfd
):
    app = await make_app(client, members.developer, APP)
    ca = pki()
    leaf = ca.leaf([SHOP, f"www.{SHOP}", "unrelated.example.org"])
    body = {**_body(leaf, [ca.intermediate], name="shop-app"), "application_id": app["id"]}
    r = await client.post("/v1/certificates", headers=members.developer, json=body)
    assert r.status_code == 201, r.text
    cert = r.json()
    assert cert["application_id"] == app["id"] and cert["hosts"] == [SHOP, f"www.{SHOP}"]
    other = await client.post(
        "/v1/certificates", headers=members.developer, json={**body, "name": "x", "hosts": ["unrelated.example.org"]}
    )
    assert problem(other, 422)["errors"][0]["loc"] == "/body/hosts/0"
    bad_app = {**body, "name": "y", "application_id": "f" * 32}
    await _refused(client, members.developer, bad_app, "/body/application_id", "no application")
    not_mine = {**_body(ca.leaf(["nothing.example.net"]), [ca.intermediate], name="z"), "application_id": app["id"]}
    await _refused(client, members.developer, not_mine, "/body/certificate", "covers none")
    team_wide = _body(ca.leaf([f"www.{SHOP}"]), [ca.intermediate], name="team", hosts=[f"www.{SHOP}"])
    assert (await client.post("/v1/certificates", headers=members.developer, json=team_wide)).status_code == 201

    dep = await _deploy(client, members.developer, app["id"])
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    tls = cmd.data["spec"]["tls"]
    assert tls == {
        "acme": False,  # ACME is off on this platform (the default of BERTH_ACME_ENABLED)
        "challenge": "http-01",
        "redirect": "auto",
        "www": "none",
        "hsts_max_age_s": 0,
        "hsts_subdomains": False,
        "hsts_preload": False,
        "certificates": [
            {
                "certificate_id": cert["id"],
                "hosts": [SHOP, f"www.{SHOP}"],  # the application's own before the team's
                "chain_pem": leaf.pem + ca.intermediate.pem,
                "key": SealedAs(leaf.key_pem, f"berth/certificate/{cert['id']}"),
            }
        ],
    }
    shown = (await client.get(f"/v1/deployments/{dep['id']}", headers=members.viewer)).json()
    assert shown["spec"]["tls"]["certificates"][0]["key"] is None
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        stored = await conn.fetchval("SELECT spec::text FROM api.deployments WHERE id = $1", dep["id"])
    finally:
        await conn.close()
    assert "PRIVATE KEY" not in stored and leaf.key_pem not in stored
    captured = capfd.readouterr()
    logged = captured.out + captured.err  # the log goes to either, as the process is set up
    key_body = "".join(leaf.key_pem.splitlines()[1:-1])
    assert "certificate uploaded" in logged and "deployment requested" in logged
    for line in leaf.key_pem.splitlines()[1:-1]:
        assert line not in logged and key_body not in logged


def test_names_cover_hosts_and_each_host_gets_the_first_certificate_listing_it():
    from berth_api.domain.certificates import assign, covers

    assert covers("*.example.com", "app.example.com") and covers("App.Example.com", "app.example.com.")
    assert not covers("*.example.com", "example.com") and not covers("*.example.com", "a.b.example.com")
    assert not covers("*.example.com", ".example.com") and not covers("shop.example.com", "www.shop.example.com")
    mine, team, newer = ("a", ["shop.example.com", "www.shop.example.com"]), ("b", ["www.shop.example.com"]), ("c", [])
    assert assign([mine, team, newer], ["www.shop.example.com", "shop.example.com", "x.example.com"]) == {
        "a": ["www.shop.example.com", "shop.example.com"]
    }
    assert assign([team, mine], ["shop.example.com", "www.shop.example.com"]) == {
        "b": ["www.shop.example.com"],
        "a": ["shop.example.com"],
    }


async def test_key_rotation_seals_the_uploaded_keys_again(client, members, scheduler, api, api_urls):
    app = await make_app(client, members.developer, APP)
    ca = pki()
    leaf = ca.leaf([SHOP])
    body = {**_body(leaf, [ca.intermediate], name="rotated"), "application_id": app["id"]}
    assert (await client.post("/v1/certificates", headers=members.developer, json=body)).status_code == 201
    await _deploy(client, members.developer, app["id"])
    await scheduler.wait_for("cmd.deployment.start", 1)

    current = api.settings.secrets_key_path.read_bytes().strip()
    engine = make_engine(api_urls["api"], "api")
    try:
        async with make_sessionmaker(engine)() as s:
            async with s.begin():
                done = await reseal_all(s, SecretBox([os.urandom(32), current]))
                await s.rollback()  # a dry run: nothing changes
    finally:
        await engine.dispose()
    assert done.counts["certificates"] == 1  # the uploaded key
    assert done.counts["deployments"] == 1  # the key in the deployment's snapshot (its only sealed value)
