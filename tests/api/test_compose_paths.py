"""Path routes of compose applications: a hosts entry's ``path`` (a URL path prefix) is checked (422 naming
the field), several services of one application share a host under different paths (a custom host or
another service's generated one), each service's snapshot carries its path, and a host stays one
application's: another application cannot take it, under any path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import make_app
from tests.api.test_projects import problem

STACK = (
    "services:\n"
    "  front:\n    image: nginx:1.27\n"
    "  api:\n    image: nginx:1.27\n"
    "  admin:\n    image: nginx:1.27\n"
    "  db:\n    image: postgres:16\n"
)


def _body(name: str = "stack", text: str = STACK, **extra: Any) -> dict:
    return {"name": name, "compose": {"inline": text}, **extra}


def _error(r, status: int = 422) -> dict:
    (err,) = problem(r, status)["errors"]
    return err


async def _url(client, headers) -> str:
    app = await make_app(client, headers, _body("probe", "services:\n  probe:\n    image: busybox\n"))
    return f"/v1/environments/{app['environment_id']}/applications"


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("api", "starts with '/'"),
        ("/a/../b", "'..' segment"),
        ("/a//b", "empty"),
        ("/a b", "starts with '/'"),
        ("/a`) || Host(`x", "starts with '/'"),
        ("/" + "a" * 200, "at most 200"),
    ],
)
async def test_a_bad_path_is_refused_naming_the_field(client, members, path, words) -> None:
    url = await _url(client, members.developer)
    hosts = [{"service": "front", "port": 80}, {"service": "api", "port": 8080, "path": path}]
    err = _error(await client.post(url, headers=members.developer, json=_body(hosts=hosts)))
    assert err["loc"] == "/body/hosts/1/path" and words in err["detail"], err


async def test_one_path_per_port_and_none_on_a_wildcard(client, members) -> None:
    url = await _url(client, members.developer)
    two = [{"service": "api", "port": 80, "path": "/api"}, {"service": "api", "port": 80, "path": "/v2"}]
    err = _error(await client.post(url, headers=members.developer, json=_body(hosts=two)))
    assert (
        err["loc"] == "/body/hosts/1/path"
        and "one path per port of a service (/api already for port 80 of api)" in err["detail"]
    )
    wild = [{"service": "api", "port": 80, "host": "*.shop.example.com", "path": "/api"}]
    err = _error(await client.post(url, headers=members.developer, json=_body(hosts=wild)))
    assert err["loc"] == "/body/hosts/0/path" and "wildcard" in err["detail"]


async def test_services_share_a_host_by_path(client, members) -> None:
    url = await _url(client, members.developer)
    hosts = [
        {"service": "front", "port": 80, "host": "shop.example.com"},
        {"service": "api", "port": 8080, "host": "shop.example.com", "path": "/api"},
        # another service's generated host, under a path
        {"service": "admin", "port": 3000, "host": "front-stack-production.localhost", "path": "/admin/"},
    ]
    r = await client.post(url, headers=members.developer, json=_body(hosts=hosts))
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["compose"]["hosts"] == hosts
    web = {s["name"]: s for s in app["services"] if s["kind"] == "web"}
    assert web["front"]["hosts"] == ["front-stack-production.localhost", "shop.example.com"]
    assert web["api"]["hosts"] == ["api-stack-production.localhost", "shop.example.com"]
    assert web["admin"]["hosts"] == ["admin-stack-production.localhost", "front-stack-production.localhost"]
    assert ("path_prefix" not in web["front"], web["api"]["path_prefix"], web["admin"]["path_prefix"]) == (
        True,
        "/api",
        "/admin/",
    )

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    spec = {s["name"]: s for s in r.json()["spec"]["services"]}
    assert (spec["front"].get("path_prefix"), spec["api"]["path_prefix"], spec["admin"]["path_prefix"]) == (
        None,
        "/api",
        "/admin/",
    )
    assert sorted(spec["api"]["hosts"]) == ["api-stack-production.localhost", "shop.example.com"]
    assert sorted(spec["admin"]["hosts"]) == ["admin-stack-production.localhost", "front-stack-production.localhost"]

    # the host stays this application's: another one cannot take it, under another path either
    other = [{"service": "front", "port": 80, "host": "shop.example.com", "path": "/other"}]
    err = _error(await client.post(url, headers=members.developer, json=_body("other", hosts=other)), 409)
    assert err["loc"] == "/body/hosts/0/host" and "in use by another application" in err["detail"]
    # and no other application gets its generated hosts
    sibling = [{"service": "front", "port": 80, "host": "front-stack-production.localhost", "path": "/x"}]
    err = _error(await client.post(url, headers=members.developer, json=_body("third", hosts=sibling)))
    assert err["loc"] == "/body/hosts/0/host" and "reserved for generated hosts" in err["detail"]

    # one host under one path once
    same = [
        {"service": "front", "port": 80, "host": "deux.example.com", "path": "/v1"},
        {"service": "api", "port": 80, "host": "deux.example.com", "path": "/v1"},
    ]
    err = _error(await client.post(url, headers=members.developer, json=_body("deux", hosts=same)))
    assert err["loc"] == "/body/hosts/1/host" and "used twice in this application under the path /v1" in err["detail"]
    whole = [
        {"service": "front", "port": 80, "host": "trois.example.com"},
        {"service": "api", "port": 80, "host": "trois.example.com"},
    ]
    err = _error(await client.post(url, headers=members.developer, json=_body("trois", hosts=whole)))
    assert err["loc"] == "/body/hosts/1/host" and "used twice in this application" in err["detail"]


async def test_the_path_goes_when_the_hosts_change(client, members) -> None:
    url = await _url(client, members.developer)
    hosts = [{"service": "front", "port": 80}, {"service": "api", "port": 80, "path": "/"}]  # "/": the whole host
    r = await client.post(url, headers=members.developer, json=_body(hosts=hosts))
    assert r.status_code == 201, r.text
    app = r.json()
    assert all("path_prefix" not in s for s in app["services"])
    hosts = [{"service": "front", "port": 80}, {"service": "api", "port": 80, "path": "/api"}]
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"hosts": hosts})
    assert r.status_code == 200, r.text
    assert [s.get("path_prefix") for s in r.json()["services"] if s["kind"] == "web"] == [None, "/api"]
