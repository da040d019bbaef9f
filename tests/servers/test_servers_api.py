"""Servers through the REST API, validated by the real scheduler over SSH against namespace servers: added
by key and by generated key; wrong key, changed host key, unreachable host and no Docker each a clear
result; the private key never in an answer; another team sees nothing; the built-in server is listed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from berth_api.settings import ApiSettings
from berth_cli.components import free_port
from berth_common import sealing, ssh_keys
from berth_common.db.provision import provision
from berth_scheduler.settings import SchedulerSettings
from tests.api.conftest import Identities, bearer, start_api
from tests.scheduler.platform import Scheduler
from tests.support.bus_helpers import Collector
from tests.support.testservers import TestServer, running_servers

pytestmark = pytest.mark.slow
SECRET = "test-secret"


@pytest.fixture(scope="module")
def namespace_servers() -> Iterator[tuple[TestServer, TestServer]]:
    with running_servers(1) as [with_docker], running_servers(1, with_docker=False) as [without]:
        yield with_docker, without


@pytest.fixture
async def platform(nats_server, database, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict, dict]]:
    urls = await provision(database, SECRET)
    settings = ApiSettings(
        nats_url=nats_server.url,
        database_url=urls["api"],
        http_port=free_port(),
        data_dir=tmp_path / "data",
        secret_key=SECRET,
        shutdown_grace_s=10,
    )
    api = await start_api(settings)
    scheduler = await Scheduler(
        SchedulerSettings(
            nats_url=nats_server.url, database_url=urls["scheduler"], secret_key=SECRET, http_port=0, ssh_timeout_s=3
        )
    ).start()
    ids = Identities(urls["api"])
    other_user = await ids.member("boss@other.example", "admin", team="other")
    other, _ = await ids.token(other_user, team="other")
    viewer_user = await ids.member("view@example.com", "viewer")
    viewer, _ = await ids.token(viewer_user)
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            yield client, bearer(api.admin_token()), {"other": bearer(other), "viewer": bearer(viewer)}
    finally:
        await ids.close()
        await scheduler.stop()
        await api.shutdown()


async def _settled(client: httpx.AsyncClient, headers: dict, server_id: str, timeout: float = 40) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/v1/servers/{server_id}", headers=headers)).json()
        if body["state"] != "validating":
            return body
        assert time.monotonic() < deadline, f"still validating: {body}"
        await asyncio.sleep(0.2)


def _key(server: TestServer) -> str:
    return server.private_key_pem


async def test_servers_are_added_validated_and_explained(platform, namespace_servers, nats_server) -> None:
    client, admin, others = platform
    announced = await Collector().start(nats_server.url, "evt.server.changed")
    good, no_docker = namespace_servers

    listed = (await client.get("/v1/servers", headers=admin)).json()
    assert [s["id"] for s in listed] == ["local"] and listed[0]["builtin"] is True

    r = await client.post(
        "/v1/servers", headers=admin, json={"name": "web-1", "host": good.address, "private_key": _key(good)}
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["state"] == "validating" and "private_key" not in created
    assert "PRIVATE KEY" not in r.text
    ready = await _settled(client, admin, created["id"])
    assert ready["state"] == "ready", ready
    assert ready["host_key_fingerprint"] == good.host_key_fingerprint  # pinned at first contact
    assert [c["name"] for c in ready["checks"]] == [
        "reachable",
        "authentication",
        "host_key",
        "docker",
        "docker_socket",
        "docker_version",
        "disk",
    ]
    assert ready["docker_version"] and ready["architecture"] and ready["free_bytes"] > 0

    # a viewer reads, cannot change; another team does not see it at all
    assert (await client.get(f"/v1/servers/{created['id']}", headers=others["viewer"])).status_code == 200
    assert (await client.post(f"/v1/servers/{created['id']}/validate", headers=others["viewer"])).status_code == 403
    assert (await client.get(f"/v1/servers/{created['id']}", headers=others["other"])).status_code == 404
    assert [s["id"] for s in (await client.get("/v1/servers", headers=others["other"])).json()] == ["local"]

    # the server is reinstalled with a new host key: refused until an admin accepts the one offered
    import asyncssh

    first_pin = good.host_key_fingerprint
    new_host_key = asyncssh.generate_private_key("ssh-ed25519")
    good.replace_host_key(new_host_key)
    r = await client.post(f"/v1/servers/{created['id']}/validate", headers=admin)
    assert r.status_code == 202 and r.json()["state"] == "validating"
    changed = await _settled(client, admin, created["id"])
    assert changed["state"] == "unreachable" and changed["checks"][0]["name"] == "host_key"
    assert "not the one pinned" in changed["reason"]
    offered = str(new_host_key.get_fingerprint("sha256"))
    assert changed["offered_host_key_fingerprint"] == offered
    assert changed["host_key_fingerprint"] == first_pin  # still the old pin
    wrong = await client.post(
        f"/v1/servers/{created['id']}/host-key", headers=admin, json={"fingerprint": "SHA256:" + "A" * 43}
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["loc"] == "/body/fingerprint"
    r = await client.post(f"/v1/servers/{created['id']}/host-key", headers=admin, json={"fingerprint": offered})
    assert r.status_code == 202, r.text
    accepted = await _settled(client, admin, created["id"])
    assert accepted["state"] == "ready" and accepted["host_key_fingerprint"] == offered
    assert accepted["offered_host_key_fingerprint"] is None
    again = await client.post(f"/v1/servers/{created['id']}/host-key", headers=admin, json={"fingerprint": offered})
    assert again.status_code == 409

    # a generated key: the public key is shown; until it is installed the server refuses it
    r = await client.post("/v1/servers", headers=admin, json={"name": "web-2", "host": good.address})
    generated = r.json()
    assert generated["public_key"].startswith("ssh-ed25519 ")
    refused = await _settled(client, admin, generated["id"])
    assert refused["state"] == "unreachable" and refused["checks"][0]["name"] == "authentication"
    good.authorize(generated["public_key"])
    await client.post(f"/v1/servers/{generated['id']}/validate", headers=admin)
    settled = await _settled(client, admin, generated["id"])
    assert settled["state"] == "ready", settled

    # no Docker engine; nobody listening; a name taken; a bad key; the built-in server untouchable
    r = await client.post(
        "/v1/servers", headers=admin, json={"name": "bare", "host": no_docker.address, "private_key": _key(no_docker)}
    )
    bare = await _settled(client, admin, r.json()["id"])
    assert (bare["state"], bare["checks"][-1]["name"]) == ("invalid", "docker")
    assert bare["reason"].startswith("no Docker engine")
    r = await client.post(
        "/v1/servers",
        headers=admin,
        json={"name": "gone", "host": good.address, "port": 2222, "private_key": _key(good)},
    )
    gone = await _settled(client, admin, r.json()["id"])
    assert gone["state"] == "unreachable" and "refused the connection" in gone["reason"]
    taken = await client.post("/v1/servers", headers=admin, json={"name": "web-1", "host": good.address})
    assert taken.status_code == 409
    bad = await client.post(
        "/v1/servers", headers=admin, json={"name": "x", "host": good.address, "private_key": "not a key"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "/body/private_key"
    for bad_host in ("-oProxyCommand=x", "a b", "host;id"):
        r = await client.post("/v1/servers", headers=admin, json={"name": "y", "host": bad_host})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/host", bad_host
    assert (await client.delete("/v1/servers/local", headers=admin)).status_code == 409
    assert (await client.delete(f"/v1/servers/{gone['id']}", headers=admin)).status_code == 204
    assert (await client.get(f"/v1/servers/{gone['id']}", headers=admin)).status_code == 404

    everything = (await client.get("/v1/servers", headers=admin)).text
    body_lines = [line for line in _key(good).splitlines() if line and "PRIVATE KEY" not in line]
    assert "PRIVATE KEY" not in everything and not any(line in everything for line in body_lines)
    assert ssh_keys.public_key_of(_key(good)).split()[1] in everything  # the public key is shown

    # every change went out as evt.server.changed, the key sealed, each revision higher than the last
    await announced.close()
    changes = [body["data"] for body, _ in announced.items]
    first = [c for c in changes if c["server_id"] == created["id"]]
    assert [c["revision"] for c in first] == sorted({c["revision"] for c in first})
    assert [c["state"] for c in first][:2] == ["validating", "ready"] and first[-1]["state"] == "ready"
    assert first[-1]["host_key"] and first[-1]["private_key"] and sealing.is_sealed(first[-1]["private_key"])
    assert [c["state"] for c in changes if c["server_id"] == gone["id"]][-1] == "removed"
    assert not any(line in str(changes) for line in body_lines)
