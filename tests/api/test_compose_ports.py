"""Two routed ports of one compose service (MinIO: its API on 9000, its console on 9001, each on a host of its
own): a host entry picks a port the service declares; the translation keeps the service's first port and
gives the other its hosts (``port_hosts``), which the deployment's snapshot carries. A second port on no named
host gets a generated host of its own; each port may have a path of its own (its API port under ``/api``). A
port the service does not declare, a host given to two ports, two paths for one port, or two routes on one
host and path is a 422 naming the field."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from berth_api.adapters.compose_parser import normalise
from berth_api.domain.compose import ComposeRefusal, HostMap, precheck, translate
from tests.api.conftest import make_app
from tests.api.test_projects import problem

MINIO = """
services:
  minio:
    image: minio/minio:RELEASE.2024-10-13T13-34-11Z
    command: server /data --console-address :9001
    expose: ['9000', '9001']
"""


def _translated(hosts: list[HostMap]) -> dict[str, Any]:
    found = asyncio.run(normalise(MINIO, {}))
    return translate(found.model, precheck(MINIO), hosts=hosts)


def test_a_host_picks_another_port_of_its_service() -> None:
    hosts = [
        HostMap("minio", 9000),
        HostMap("minio", 9001, "console.example.com"),
        HostMap("minio", 9000, "s3.example.com"),
        HostMap("minio", 9001, "admin.example.com"),
    ]
    (minio,) = _translated(hosts)["services"]
    assert {k: minio[k] for k in ("kind", "port", "domains", "port_hosts")} == {
        "kind": "web",
        "port": 9000,
        "domains": ["console.example.com", "s3.example.com", "admin.example.com"],
        "port_hosts": [{"port": 9001, "hosts": ["console.example.com", "admin.example.com"]}],
    }
    (one,) = _translated([HostMap("minio", 9000, "s3.example.com")])["services"]
    assert "port_hosts" not in one


@pytest.mark.parametrize(
    ("hosts", "spot", "why"),
    [
        (
            [HostMap("minio", 9000), HostMap("minio", 9001, path="/a"), HostMap("minio", 9001, "c.example.com")],
            "hosts/2/path",
            "Berth routes one path per port of a service (/a already for port 9001 of minio)",
        ),
        (
            [HostMap("minio", 9000, "s3.example.com"), HostMap("minio", 9000, "s.example.com", "/s3")],
            "hosts/1/path",
            "Berth routes one path per port of a service (/ already for port 9000 of minio)",
        ),
        (  # one host and path to one port of a service
            [HostMap("minio", 9000, "s3.example.com", "/s3"), HostMap("minio", 9001, "s3.example.com", "/s3")],
            "hosts/1/host",
            "s3.example.com is used twice in this application under the path /s3 (port 9000 of minio has it)",
        ),
        (
            [HostMap("minio", 9000), HostMap("minio", 9002, "console.example.com")],
            "hosts/1/port",
            "the service minio declares no container port 9002 (ports, expose: 9000, 9001): a second routed port is "
            "one the service declares",
        ),
        (
            [HostMap("minio", 9000, "s3.example.com"), HostMap("minio", 9001, "s3.example.com")],
            "hosts/1/host",
            "s3.example.com is used twice in this application (port 9000 of minio has it)",
        ),
    ],
)
def test_a_second_port_it_cannot_route_is_refused_naming_the_field(hosts, spot, why) -> None:
    with pytest.raises(ComposeRefusal) as caught:
        _translated(hosts)
    assert (caught.value.spot, caught.value.why) == (spot, why)


def test_one_host_routes_two_ports_of_a_service_under_two_paths() -> None:
    """As Coolify and Dokploy do: the web port at ``/`` and the API port at ``/api`` of one host, in either
    order of the entries; the host stays the service's own port's too (``shared_hosts``)."""
    hosts = [HostMap("minio", 9000, "s3.example.com"), HostMap("minio", 9001, "s3.example.com", "/api")]
    for given in (hosts, hosts[::-1]):
        (minio,) = _translated(given)["services"]
        assert {k: minio.get(k) for k in ("port", "domains", "path_prefix", "port_hosts", "shared_hosts")} == {
            "port": 9001 if given[0].port == 9001 else 9000,
            "domains": ["s3.example.com"],
            "path_prefix": "/api" if given[0].port == 9001 else None,
            "port_hosts": [
                {"port": 9000, "hosts": ["s3.example.com"], "path": "/"}
                if given[0].port == 9001
                else {"port": 9001, "hosts": ["s3.example.com"], "path": "/api"}
            ],
            "shared_hosts": ["s3.example.com"],
        }
    (alone,) = _translated([HostMap("minio", 9000, "a.example.com"), hosts[1]])["services"]
    assert "shared_hosts" not in alone  # a host of the second port only: its own port does not serve it


async def test_two_hosts_route_two_ports_of_one_service(client, members, scheduler) -> None:
    hosts = [
        {"service": "minio", "port": 9000, "host": "s3.example.com"},
        {"service": "minio", "port": 9001, "host": "console.example.com"},
    ]
    body = {"name": "files", "compose": {"inline": MINIO}, "hosts": hosts}
    app = await make_app(client, members.developer, body)
    (web,) = app["services"]
    assert web["port"] == 9000 and web["hosts"][1:] == ["s3.example.com", "console.example.com"]
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    (sent,) = cmd.data["spec"]["services"]
    assert sent["port"] == 9000 and sent["hosts"] == web["hosts"]
    assert sent["port_hosts"] == [{"port": 9001, "hosts": ["console.example.com"]}]

    bad = {
        **body,
        "name": "files-2",
        "hosts": [*hosts[:1], {"service": "minio", "port": 9002, "host": "c.example.com"}],
    }
    r = await client.post(f"/v1/environments/{app['environment_id']}/applications", headers=members.developer, json=bad)
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == "/body/hosts/1/port" and "declares no container port 9002" in err["detail"]


async def test_one_host_gives_two_ports_by_path_through_the_api(client, members, scheduler) -> None:
    hosts = [
        {"service": "minio", "port": 9000, "host": "s3.example.com"},
        {"service": "minio", "port": 9001, "host": "s3.example.com", "path": "/api"},
    ]
    app = await make_app(client, members.developer, {"name": "bypath", "compose": {"inline": MINIO}, "hosts": hosts})
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    (sent,) = cmd.data["spec"]["services"]
    assert (sent["hosts"], sent["port_hosts"], sent["shared_hosts"]) == (
        ["minio-bypath-production.localhost", "s3.example.com"],
        [{"port": 9001, "hosts": ["s3.example.com"], "path": "/api"}],
        ["s3.example.com"],
    )
    same = [hosts[0], {**hosts[1], "path": "/"}]  # the same host and path for two ports: refused
    r = await client.post(
        f"/v1/environments/{app['environment_id']}/applications",
        headers=members.developer,
        json={"name": "bypath-2", "compose": {"inline": MINIO}, "hosts": same},
    )
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == "/body/hosts/1/host" and "s3.example.com is used twice" in err["detail"], err


def test_each_routed_port_has_its_own_path_and_a_second_port_its_own_generated_host() -> None:
    """Coolify's mindsdb: its GUI (47334) on a generated host, its API port (47335) under ``/api`` on another
    generated host; MinIO's console on a named host under a path while its API has the whole host."""
    (minio,) = _translated([HostMap("minio", 9000), HostMap("minio", 9001, path="/api")])["services"]
    assert {k: minio.get(k) for k in ("port", "domains", "path_prefix", "port_hosts")} == {
        "port": 9000,
        "domains": [],
        "path_prefix": None,
        "port_hosts": [{"port": 9001, "hosts": [], "path": "/api", "generated": True}],
    }
    hosts = [
        HostMap("minio", 9000, "s3.example.com", "/s3"),
        HostMap("minio", 9001, "console.example.com"),
        HostMap("minio", 9001, "admin.example.com", "/"),
        HostMap("minio", 9001),
    ]
    (minio,) = _translated(hosts)["services"]
    assert {k: minio.get(k) for k in ("port", "domains", "path_prefix", "port_hosts")} == {
        "port": 9000,
        "domains": ["s3.example.com", "console.example.com", "admin.example.com"],
        "path_prefix": "/s3",
        "port_hosts": [
            {"port": 9001, "hosts": ["console.example.com", "admin.example.com"], "path": "/", "generated": True}
        ],
    }


def test_two_routes_on_one_host_and_path_are_refused_naming_the_field() -> None:
    text = "services:\n  a:\n    image: nginx\n    expose: ['80', '81']\n  b:\n    image: nginx\n"
    found = asyncio.run(normalise(text, {}))
    ok = [
        HostMap("a", 80, "x.example.com"),
        HostMap("a", 81, "y.example.com", "/api"),
        HostMap("b", 80, "y.example.com"),
    ]
    assert [s.get("port_hosts") for s in translate(found.model, precheck(text), hosts=ok)["services"]] == [
        [{"port": 81, "hosts": ["y.example.com"], "path": "/api"}],
        None,
    ]
    same = [
        HostMap("a", 80, "x.example.com"),
        HostMap("a", 81, "y.example.com", "/api"),
        HostMap("b", 80, "y.example.com", "/api"),
    ]
    with pytest.raises(ComposeRefusal) as caught:
        translate(found.model, precheck(text), hosts=same)
    assert (caught.value.spot, caught.value.why) == (
        "hosts/2/host",
        "y.example.com is used twice in this application under the path /api (port 81 of a has it)",
    )


def test_a_service_declaring_no_port_may_route_any_second_port() -> None:
    """Its ports are its image's, unknown to the translation (as Coolify's templates give theirs, in
    ``SERVICE_URL_<NAME>_<PORT>`` only); the deployment checks each routed port answers."""
    text = "services:\n  backend:\n    image: convex/backend\n"
    found = asyncio.run(normalise(text, {}))
    hosts = [HostMap("backend", 3210), HostMap("backend", 3211, "site.example.com")]
    (backend,) = translate(found.model, precheck(text), hosts=hosts)["services"]
    assert (backend["port"], backend["port_hosts"]) == (3210, [{"port": 3211, "hosts": ["site.example.com"]}])


def test_a_host_entry_asks_its_service_to_buffer_requests_one_way() -> None:
    hosts = [HostMap("minio", 9000, "s3.example.com", buffer_mb=25), HostMap("minio", 9001, "console.example.com")]
    (minio,) = _translated(hosts)["services"]
    assert minio["buffer_requests"] == {"max_body_mb": 25}
    (plain,) = _translated([HostMap("minio", 9000, "s3.example.com")])["services"]
    assert "buffer_requests" not in plain
    two_ways = [HostMap("minio", 9000, "s3.example.com", buffer_mb=25), HostMap("minio", 9000, buffer_mb=5)]
    with pytest.raises(ComposeRefusal) as caught:
        _translated(two_ways)
    assert (caught.value.spot, caught.value.why) == (
        "hosts/1/buffer_requests",
        "Berth buffers one service's requests one way (25 MiB already for minio)",
    )


async def test_a_compose_service_buffers_its_requests_through_the_api(client, members, scheduler) -> None:
    hosts = [{"service": "minio", "port": 9000, "host": "s3.example.com", "buffer_requests": {"max_body_mb": 50}}]
    app = await make_app(client, members.developer, {"name": "buffered", "compose": {"inline": MINIO}, "hosts": hosts})
    assert app["compose"]["hosts"] == hosts
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    (sent,) = cmd.data["spec"]["services"]
    assert sent["buffer_requests"] == {"max_body_mb": 50}
    env = app["environment_id"]
    for size, loc in (
        (0, "/body/hosts/0/buffer_requests/max_body_mb"),
        ("x", "/body/hosts/0/buffer_requests/max_body_mb"),
    ):
        bad = {
            "name": "buffered-2",
            "compose": {"inline": MINIO},
            "hosts": [{**hosts[0], "buffer_requests": {"max_body_mb": size}}],
        }
        r = await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=bad)
        assert problem(r, 422)["errors"][0]["loc"] == loc, r.text


async def test_a_second_port_gets_its_own_generated_host_and_path(client, members, scheduler) -> None:
    """The generated host of a second routed port is claimed like the service's own (``<service>-<port>-<app>-
    <env>``): shown with the service's hosts, given to that port in the deployment's snapshot under the port's
    path, and refused to another application."""
    hosts = [{"service": "minio", "port": 9000}, {"service": "minio", "port": 9001, "path": "/ui"}]
    app = await make_app(client, members.developer, {"name": "gen", "compose": {"inline": MINIO}, "hosts": hosts})
    (web,) = app["services"]
    assert web["hosts"] == ["minio-gen-production.localhost", "minio-9001-gen-production.localhost"]
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    (sent,) = cmd.data["spec"]["services"]
    assert sent["hosts"] == ["minio-gen-production.localhost", "minio-9001-gen-production.localhost"]
    assert sent["port_hosts"] == [{"port": 9001, "hosts": ["minio-9001-gen-production.localhost"], "path": "/ui"}]

    env = app["environment_id"]
    taken = {"name": "other", "compose": {"inline": MINIO}}
    taken["hosts"] = [{"service": "minio", "port": 9000, "host": "minio-9001-gen-production.localhost"}]
    r = await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=taken)
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == "/body/hosts/0/host" and "reserved for generated hosts" in err["detail"], err
    # a service of the application may share it under another path, as another service's generated host
    two = "services:\n  minio:\n    image: minio/minio\n    expose: ['9000', '9001']\n  docs:\n    image: nginx\n"
    shared = [
        {"service": "minio", "port": 9000},
        {"service": "minio", "port": 9001},
        {"service": "docs", "port": 80, "host": "minio-9001-shared-production.localhost", "path": "/docs"},
    ]
    r = await client.post(
        f"/v1/environments/{env}/applications",
        headers=members.developer,
        json={"name": "shared", "compose": {"inline": two}, "hosts": shared},
    )
    assert r.status_code == 201, r.text
    same = [*shared[:2], {**shared[2], "path": "/"}]  # its whole host is the console's already
    r = await client.post(
        f"/v1/environments/{env}/applications",
        headers=members.developer,
        json={
            "name": "shared-2",
            "compose": {"inline": two},
            "hosts": [{**h, "host": h["host"].replace("shared", "shared-2")} if "host" in h else h for h in same],
        },
    )
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == "/body/hosts/2/host" and "used twice in this application" in err["detail"], err
