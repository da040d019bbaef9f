"""Wildcard custom domains (``*.example.com``) through the REST api: accepted where their certificate can
come from somewhere (ACME by DNS-01, an uploaded certificate, or HTTP only), refused with a 422 naming
``/body/tls/challenge`` and saying why with HTTP-01 or TLS-ALPN-01 (set, or the platform's default); a
malformed wildcard refused naming the domain; an uploaded wildcard certificate covers the hosts under it
(its refresh and the next deployment carry it for them)."""

from __future__ import annotations

import pytest

from tests.api.conftest import WEB_APP, make_app
from tests.api.test_certificate_refresh import changes  # noqa: F401 (its fixture)
from tests.api.test_certificates import _body
from tests.api.test_deployments import _deploy
from tests.api.test_projects import problem
from tests.api.test_tls_options import api_settings, platform  # noqa: F401 (its fixtures: the platform's settings)
from tests.api.tls_certs import pki

WEB = WEB_APP["services"][0]
WILD = "*.shops.example.com"


def _app(name: str, domains: list[str], tls: dict | None = None) -> dict:
    body = {**WEB_APP, "name": name, "services": [{**WEB, "domains": domains}, WEB_APP["services"][1]]}
    return {**body, "tls": tls} if tls is not None else body


async def _create(client, headers, body: dict):
    projects = (await client.get("/v1/projects", headers=headers)).json()
    env = projects[0]["environments"][0]["id"]
    return await client.post(f"/v1/environments/{env}/applications", headers=headers, json=body)


async def test_a_wildcard_needs_dns_01_when_acme_gives_its_certificate(client, members, scheduler):
    dev = members.developer
    plain = await make_app(client, dev, _app("plain", [WILD, "shop.example.com"]))  # ACME off: HTTP only
    assert plain["services"][0]["domains"] == [WILD, "shop.example.com"]
    off = await make_app(client, dev, _app("off", ["*.off.example.com"], {"acme": False}))
    assert off["tls"]["acme"] is False

    for challenge in ("http-01", "tls-alpn-01"):
        r = await _create(
            client,
            dev,
            _app(f"acme-{challenge[:3]}", [WILD.replace("shops", "x")], {"acme": True, "challenge": challenge}),
        )
        found = problem(r, 422)["errors"][0]
        assert found["loc"] == "/body/tls/challenge", found
        assert "wildcard host *.x.example.com gets a certificate by dns-01 only" in found["detail"]
        assert "set challenge to dns-01" in found["detail"]
    # turning ACME on for an application that has one: refused the same way, nothing changed
    r = await client.patch(f"/v1/applications/{plain['id']}", headers=dev, json={"tls": {"acme": True}})
    assert problem(r, 422)["errors"][0]["loc"] == "/body/tls/challenge"
    # dns-01 on a platform without a DNS provider: refused for that reason
    r = await client.patch(
        f"/v1/applications/{plain['id']}", headers=dev, json={"tls": {"acme": True, "challenge": "dns-01"}}
    )
    assert "DNS provider" in problem(r, 422)["errors"][0]["detail"]

    for i, bad in enumerate(("*.com", "a.*.example.com", "**.example.com", "*example.com", "*.*.example.com")):
        r = await _create(client, dev, _app(f"bad{i}", [bad]))
        assert problem(r, 422)["errors"][0]["loc"] == "/body/services/0/web/domains/0", bad

    await _deploy(client, dev, plain["id"])
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert cmd.data["spec"]["services"][0]["hosts"][1:] == ["*.shops.example.com", "shop.example.com"]


@pytest.mark.parametrize("platform", [{"acme_enabled": True}])
async def test_the_platforms_acme_default_refuses_a_wildcard_without_dns_01(client, members):
    off = await make_app(client, members.developer, _app("off", [WILD], {"acme": False}))
    assert off["tls"]["acme"] is False
    r = await _create(client, members.developer, _app("wild", ["*.other.example.com"]))
    found = problem(r, 422)["errors"][0]
    assert found["loc"] == "/body/tls/challenge" and "dns-01 only" in found["detail"]


@pytest.mark.parametrize("platform", [{"acme_enabled": True, "acme_dns_provider": "pebble-challtestsrv"}])
async def test_dns_01_gets_a_wildcard_its_certificate(client, members, scheduler):
    app = await make_app(client, members.developer, _app("wild", [WILD], {"challenge": "dns-01"}))
    await _deploy(client, members.developer, app["id"])
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    tls = cmd.data["spec"]["tls"]
    assert (tls["acme"], tls["challenge"]) == (True, "dns-01")


async def test_an_uploaded_wildcard_certificate_covers_the_hosts_under_it(
    client,
    members,
    scheduler,
    changes,  # noqa: F811
):
    dev = members.developer
    named = await make_app(client, dev, _app("named", ["a.shops.example.com", "other.example.org"]))
    wild = await make_app(client, dev, _app("wild", [WILD]))
    deeper = await make_app(client, dev, _app("deeper", ["x.a.shops.example.com"]))
    ca = pki()
    leaf = ca.leaf([WILD])
    r = await client.post("/v1/certificates", headers=dev, json=_body(leaf, [ca.intermediate], name="w", hosts=[WILD]))
    assert r.status_code == 201, r.text
    cert = r.json()
    refreshes = await changes.wait_for("evt.certificates.changed", 2)
    by_app = {c.data["application_id"]: c.data for c in refreshes}
    assert set(by_app) == {named["id"], wild["id"]}  # not x.a.shops.example.com: one label only
    assert [(c["certificate_id"], c["hosts"]) for c in by_app[named["id"]]["certificates"]] == [
        (cert["id"], ["a.shops.example.com"])
    ]
    assert [(c["certificate_id"], c["hosts"]) for c in by_app[wild["id"]]["certificates"]] == [(cert["id"], [WILD])]
    assert len(await changes.settled("evt.certificates.changed")) == 2

    await _deploy(client, dev, named["id"])
    await _deploy(client, dev, deeper["id"])
    first, second = await scheduler.wait_for("cmd.deployment.start", 2)
    specs = {c.data["application_id"]: c.data["spec"] for c in (first, second)}
    assert [c["hosts"] for c in specs[named["id"]]["tls"]["certificates"]] == [["a.shops.example.com"]]
    assert "tls" not in specs[deeper["id"]]


async def test_a_compose_service_may_have_a_wildcard_host(client, members, scheduler):
    compose = {"inline": "services:\n  web:\n    image: busybox\n    expose: ['8080']\n"}
    body = {"name": "stack", "compose": compose, "hosts": [{"service": "web", "port": 8080, "host": "*.c.example.com"}]}
    app = await make_app(client, members.developer, body)
    assert app["compose"]["hosts"] == [{"service": "web", "port": 8080, "host": "*.c.example.com"}]
    bad = {**body, "name": "bad", "hosts": [{"service": "web", "port": 8080, "host": "*.com"}]}
    r = await _create(client, members.developer, bad)
    assert problem(r, 422)["errors"][0]["loc"] == "/body/hosts/0/host"
    acme = {**body, "name": "acme", "hosts": [{"service": "web", "port": 8080, "host": "*.d.example.com"}]}
    r = await _create(client, members.developer, {**acme, "tls": {"acme": True}})
    assert problem(r, 422)["errors"][0]["loc"] == "/body/tls/challenge"
    await _deploy(client, members.developer, app["id"])
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    hosts = [h for svc in cmd.data["spec"]["services"] for h in svc.get("hosts", [])]
    assert "*.c.example.com" in hosts


async def test_a_wildcard_and_a_name_under_it_never_belong_to_two_teams(client, members, scheduler):
    """One team's wildcard would answer, with its own certificate, for another team's host under it: the
    second claim is a 409 naming the host it overlaps, either way round; within one team both stay allowed."""
    made = await client.post("/v1/projects", headers=members.other, json={"name": "elsewhere"})
    assert made.status_code == 201, made.text
    mine = await make_app(client, members.developer, _app("wild", ["*.team.example.com"]))
    r = await _create(client, members.other, _app("theirs", ["shop.team.example.com"]))
    body = problem(r, 409)
    assert body["errors"][0]["loc"] == "/body/services/0/domains/0", body
    assert "*.team.example.com" in str(body["errors"]) and "another team" in str(body["errors"]), body
    await make_app(client, members.other, _app("named", ["blog.named.example.com"]))
    r = await _create(client, members.developer, _app("grab", ["*.named.example.com"]))
    assert "blog.named.example.com" in str(problem(r, 409)["errors"])
    # deeper names and the bare base are not under the wildcard; the same team may hold both
    await make_app(client, members.other, _app("deep", ["a.b.team.example.com", "team.example.com"]))
    await make_app(client, members.developer, _app("same", ["shop.team.example.com"]))
    assert mine["services"][0]["domains"] == ["*.team.example.com"]
