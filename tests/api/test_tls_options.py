"""An application's TLS options through the REST api: stored and shown, each rule a 422 naming the field,
the platform's default (ACME for custom domains when the platform has it on), and ``spec.tls`` in
``cmd.deployment.start``."""

from __future__ import annotations

import pytest

from tests.api.conftest import WEB_APP, make_app
from tests.api.test_deployments import _deploy
from tests.api.test_projects import problem

APEX = "example.com"
WEB = WEB_APP["services"][0]
APP = {**WEB_APP, "services": [{**WEB, "domains": [APEX, f"www.{APEX}"]}, WEB_APP["services"][1]]}
DEFAULT = {
    "acme": None,
    "challenge": "http-01",
    "redirect": "auto",
    "www": "none",
    "hsts_max_age_s": 0,
    "hsts_subdomains": False,
    "hsts_preload": False,
}
TLS = {
    "acme": True,
    "challenge": "tls-alpn-01",
    "redirect": "always",
    "www": "to_apex",
    "hsts_max_age_s": 31_536_000,
    "hsts_subdomains": True,
    "hsts_preload": True,
}


@pytest.fixture
def platform() -> dict:
    """Settings of the api under test on top of the usual ones (a test parametrizes it)."""
    return {}


@pytest.fixture
def api_settings(api_settings, platform):
    return api_settings.model_copy(update=platform)


def _loc(response) -> str:
    return str(problem(response, 422)["errors"][0]["loc"])


async def test_options_are_stored_shown_and_sent_in_the_spec(client, members, scheduler):
    app = await make_app(client, members.developer, {**APP, "tls": TLS})
    assert app["tls"] == TLS
    assert (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()["tls"] == TLS
    await _deploy(client, members.developer, app["id"])
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert cmd.data["spec"]["tls"] == {**TLS, "certificates": []}

    problem(await client.patch(f"/v1/applications/{app['id']}", headers=members.viewer, json={"tls": DEFAULT}), 403)
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"tls": {"acme": False}})
    assert r.status_code == 200 and r.json()["tls"] == {**DEFAULT, "acme": False}, r.text
    await _deploy(client, members.developer, app["id"])
    cmd = (await scheduler.wait_for("cmd.deployment.start", 2))[1]
    assert "tls" not in cmd.data["spec"]  # HTTP only: the default options are left out of the spec

    listed = (await client.get("/v1/applications", headers=members.viewer)).json()
    assert [a["tls"] for a in listed] == [{**DEFAULT, "acme": False}]


async def test_without_options_the_platform_default_applies(client, members, scheduler):
    app = await make_app(client, members.developer, APP)
    assert app["tls"] == DEFAULT  # acme null: the platform's default
    await _deploy(client, members.developer, app["id"])
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert "tls" not in cmd.data["spec"]  # ACME is off unless the platform turns it on


@pytest.mark.parametrize("platform", [{"acme_enabled": True}])
async def test_with_acme_on_the_platform_custom_domains_get_certificates_by_default(client, members, scheduler):
    custom = await make_app(client, members.developer, APP)
    generated_only = await make_app(client, members.developer, {**WEB_APP, "name": "internal"})
    for app in (custom, generated_only):
        await _deploy(client, members.developer, app["id"])
    first, second = await scheduler.wait_for("cmd.deployment.start", 2)
    by_app = {c.data["application_id"]: c.data["spec"] for c in (first, second)}
    assert by_app[custom["id"]]["tls"] == {**DEFAULT, "acme": True, "certificates": []}
    assert "tls" not in by_app[generated_only["id"]]  # only generated hosts: no ACME by default

    off = await client.patch(
        f"/v1/applications/{custom['id']}", headers=members.developer, json={"tls": {"acme": False}}
    )
    assert off.status_code == 200, off.text
    await _deploy(client, members.developer, custom["id"])
    assert "tls" not in (await scheduler.wait_for("cmd.deployment.start", 3))[2].data["spec"]
    dns = await client.patch(
        f"/v1/applications/{custom['id']}", headers=members.developer, json={"tls": {"challenge": "dns-01"}}
    )
    assert _loc(dns) == "/body/tls/challenge"  # no DNS provider on this platform


@pytest.mark.parametrize("platform", [{"acme_enabled": True, "acme_dns_provider": "pebble-challtestsrv"}])
async def test_dns_01_is_accepted_with_a_dns_provider(client, members):
    app = await make_app(client, members.developer, {**APP, "tls": {"challenge": "dns-01"}})
    assert app["tls"]["challenge"] == "dns-01"


async def test_each_rule_is_a_422_naming_the_field(client, members):
    dev = members.developer
    app = await make_app(client, dev, APP)
    patch = f"/v1/applications/{app['id']}"

    no_www = {**WEB_APP, "name": "nowww", "services": [{**WEB, "domains": ["other.org"]}], "tls": {"www": "to_www"}}
    projects = (await client.get("/v1/projects", headers=dev)).json()
    env = projects[0]["environments"][0]["id"]
    r = await client.post(f"/v1/environments/{env}/applications", headers=dev, json=no_www)
    assert _loc(r) == "/body/tls/www"
    assert "example.com and www.example.com" in problem(r, 422)["errors"][0]["detail"]
    apps = (await client.get("/v1/applications", headers=dev)).json()
    assert [a["name"] for a in apps] == ["shop"]  # nothing was created

    for tls, loc in (
        ({"challenge": "dns-01"}, "/body/tls/challenge"),
        ({"hsts_preload": True, "hsts_max_age_s": 300, "hsts_subdomains": True}, "/body/tls/hsts_preload"),
        ({"hsts_preload": True, "hsts_max_age_s": 31_536_000}, "/body/tls/hsts_preload"),
        ({"challenge": "smtp-01"}, "/body/tls/challenge"),
        ({"redirect": "sometimes"}, "/body/tls/redirect"),
        ({"www": "both"}, "/body/tls/www"),
        ({"hsts_max_age_s": 63_072_001}, "/body/tls/hsts_max_age_s"),
        ({"hsts_max_age_s": -1}, "/body/tls/hsts_max_age_s"),
        ({"acme": "maybe"}, "/body/tls/acme"),
        ({"certificates": []}, "/body/tls/certificates"),
    ):
        assert _loc(await client.patch(patch, headers=dev, json={"tls": tls})) == loc, tls

    # The hosts change under the options: dropping www.example.com breaks a www redirect.
    r = await client.patch(patch, headers=dev, json={"tls": {"www": "to_www"}})
    assert r.status_code == 200, r.text
    only_apex = [{**WEB, "domains": [APEX]}, WEB_APP["services"][1]]
    assert _loc(await client.patch(patch, headers=dev, json={"services": only_apex})) == "/body/tls/www"
    shown = (await client.get(patch, headers=dev)).json()
    assert shown["tls"]["www"] == "to_www" and shown["services"][0]["domains"] == [APEX, f"www.{APEX}"]
