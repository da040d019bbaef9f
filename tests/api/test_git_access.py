"""Private repositories against the real api, the real builder in-process (same nats-server and Postgres)
and an OpenSSH server on loopback serving git: an application's deploy key (made by Berth, sealed, its
public key and fingerprint shown; rotate; delete), its server's host key pinned at first contact and
shown, a changed key refused until an admin accepts it by fingerprint, keys given by hand; a token
(write-only, sealed); a deployment's command carrying the credentials sealed and its record masking them;
a compose file read from the private repository with the deploy key. Roles: viewers read, developers
make, admins delete and accept keys; another team's application is a 404."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.api.conftest import make_app
from tests.api.test_projects import problem
from tests.builder.git_servers import SshGitServer
from tests.builder.support import make_repo, publish_bare, start_builder, stop_builder

pytestmark = pytest.mark.slow
START = "cmd.deployment.start"


@pytest.fixture
async def builder(nats_server, database, tmp_path: Path):
    running = await start_builder(nats_server.url, database, tmp_path / "builder")
    yield running
    await stop_builder(running)


@pytest.fixture
def ssh_git(tmp_path: Path):
    server = SshGitServer(tmp_path / "sshd").start()
    yield server
    server.stop()


def keygen_fingerprint(line: str, tmp_path: Path) -> str:
    path = tmp_path / "k.pub"
    path.write_text(line + "\n")
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], capture_output=True, text=True)
    return out.stdout.split()[1]


async def sealed_rows(api_urls) -> list[bytes]:
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        return [bytes(r["sealed"]) for r in await conn.fetch("SELECT sealed FROM api.git_credentials")]
    finally:
        await conn.close()


def app_body(repository: str, name: str = "private") -> dict:
    source = {"kind": "git", "repository": repository, "branch": "main"}
    return {"name": name, "source": source, "services": [{"kind": "web", "name": "web", "port": 3000}]}


async def test_deploy_key_routes_host_key_pinning_and_the_deployment_command(
    client, members, api_urls, builder, scheduler, ssh_git, tmp_path
):
    repo = tmp_path / "repo"
    make_repo(repo, {"Dockerfile": "FROM scratch\n"})
    bare = publish_bare(repo, tmp_path / "served", "app.git")
    app = await make_app(client, members.developer, app_body(ssh_git.scp_url(bare)))
    key_url = f"/v1/applications/{app['id']}/deploy-key"
    access_url = f"/v1/applications/{app['id']}/git-access"

    r = await client.get(access_url, headers=members.viewer)
    assert r.status_code == 200 and r.json() == {
        "application_id": app["id"],
        "repository": ssh_git.scp_url(bare),
        "uses": "deploy_key",
        "deploy_key": None,
        "token": None,
    }
    problem(await client.post(key_url, headers=members.viewer), 403)
    r = await client.post(key_url, headers=members.developer)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["public_key"].startswith("ssh-ed25519 ") and made["public_key"].endswith(f" berth-{app['id']}")
    assert made["fingerprint"] == keygen_fingerprint(made["public_key"], tmp_path)
    assert made["ssh_server"] == ssh_git.address and made["host_keys"] == [] == made["offered_host_keys"]
    assert "PRIVATE" not in r.text
    problem(await client.post(key_url, headers=members.developer), 409)
    problem(await client.get(access_url, headers=members.other), 404)
    problem(await client.post(key_url + "/rotate", headers=members.other), 404)
    shown = await client.get(access_url, headers=members.viewer)
    assert shown.status_code == 200 and shown.json()["deploy_key"] == made
    (sealed,) = await sealed_rows(api_urls)
    assert b"PRIVATE KEY" not in sealed and made["public_key"].split()[1].encode() not in sealed
    ssh_git.authorize(made["public_key"])

    # first contact: the builder reads the server's key; it is pinned and shown with its fingerprint
    problem(await client.post(key_url + "/host-keys/scan", headers=members.viewer), 403)
    r = await client.post(key_url + "/host-keys/scan", headers=members.developer)
    assert r.status_code == 200, r.text
    (pin,) = r.json()["host_keys"]
    host_line = ssh_git.host_key_line()
    assert (pin["host"], f"{pin['key_type']} {pin['key']}", pin["source"]) == (
        ssh_git.address,
        host_line,
        "first-contact",
    )
    assert pin["fingerprint"] == keygen_fingerprint(host_line, tmp_path)

    # a deployment carries the key sealed and the pinned host key; its record shows neither secret
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code in (201, 202), r.text
    (start,) = await scheduler.wait_for(START)
    auth = start.data["spec"]["source"]["auth"]
    assert auth["kind"] == "ssh" and auth["private_key"].startswith("sealed:v1:")
    assert auth["host_keys"] == [{"host": ssh_git.address, "key_type": pin["key_type"], "key": pin["key"]}]
    assert b"PRIVATE KEY" not in start.raw
    record = await client.get(f"/v1/deployments/{start.data['deployment_id']}", headers=members.viewer)
    assert record.status_code == 200, record.text
    assert record.json()["spec"]["source"]["auth"]["private_key"] is None
    assert "PRIVATE KEY" not in record.text and "sealed:v1:" not in record.text

    # the server is reinstalled: a scan says so (409), only an admin accepts the new key, by fingerprint
    ssh_git.replace_host_key()
    new_line = ssh_git.host_key_line()
    changed = problem(await client.post(key_url + "/host-keys/scan", headers=members.developer), 409)
    assert keygen_fingerprint(new_line, tmp_path) in changed["detail"]
    shown = (await client.get(access_url, headers=members.viewer)).json()["deploy_key"]
    assert [p["source"] for p in shown["host_keys"]] == ["first-contact"]  # still the one trusted
    assert [(f"{p['key_type']} {p['key']}", p["source"]) for p in shown["offered_host_keys"]] == [(new_line, "offered")]
    accept = {"fingerprint": keygen_fingerprint(new_line, tmp_path)}
    problem(await client.post(key_url + "/host-keys/accept", headers=members.developer, json=accept), 403)
    wrong = {"fingerprint": pin["fingerprint"]}
    problem(await client.post(key_url + "/host-keys/accept", headers=members.admin, json=wrong), 409)
    r = await client.post(key_url + "/host-keys/accept", headers=members.admin, json=accept)
    assert r.status_code == 200, r.text
    (pin,) = r.json()["host_keys"]
    assert (f"{pin['key_type']} {pin['key']}", pin["source"]) == (new_line, "accepted")
    assert r.json()["offered_host_keys"] == []
    problem(await client.post(key_url + "/host-keys/accept", headers=members.admin, json=accept), 409)  # none now

    # keys given by hand (as a forge publishes them) replace the pins; a line that does not read is a 422
    given = {"host_keys": [f"{host_line} old-key"]}
    problem(await client.put(key_url + "/host-keys", headers=members.developer, json=given), 403)
    r = await client.put(key_url + "/host-keys", headers=members.admin, json=given)
    assert r.status_code == 200 and [(p["key"], p["source"]) for p in r.json()["host_keys"]] == [
        (host_line.split()[1], "given")
    ]
    bad = problem(await client.put(key_url + "/host-keys", headers=members.admin, json={"host_keys": ["nope"]}), 422)
    assert bad["errors"][0]["loc"] == "/body/host_keys"

    rotated = (await client.post(key_url + "/rotate", headers=members.developer)).json()
    assert rotated["public_key"] != made["public_key"] and rotated["rotated_at"]
    problem(await client.delete(key_url, headers=members.developer), 403)
    problem(await client.delete(key_url, headers=members.other), 404)
    assert (await client.delete(key_url, headers=members.admin)).status_code == 204
    assert (await client.get(access_url, headers=members.viewer)).json()["deploy_key"] is None
    problem(await client.post(key_url + "/rotate", headers=members.developer), 404)
    assert await sealed_rows(api_urls) == []


async def test_a_deployment_pins_at_first_contact_and_a_compose_file_is_read_with_the_deploy_key(
    client, members, builder, scheduler, ssh_git, tmp_path
):
    compose = "services:\n  web:\n    image: nginx:1\n    ports: ['80']\n"
    repo = tmp_path / "repo"
    sha = make_repo(repo, {"compose.yml": compose})
    bare = publish_bare(repo, tmp_path / "served", "app.git")
    app = await make_app(client, members.developer, app_body(ssh_git.ssh_url(bare), "plain"))
    key = (await client.post(f"/v1/applications/{app['id']}/deploy-key", headers=members.developer)).json()
    ssh_git.authorize(key["public_key"])

    # no scan asked for: the first deployment pins what the server presents, and it is shown
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code in (201, 202), r.text
    (start,) = await scheduler.wait_for(START)
    assert [k["key"] for k in start.data["spec"]["source"]["auth"]["host_keys"]] == [ssh_git.host_key_line().split()[1]]
    shown = (await client.get(f"/v1/applications/{app['id']}/git-access", headers=members.viewer)).json()
    assert [(p["host"], p["source"]) for p in shown["deploy_key"]["host_keys"]] == [
        (f"{ssh_git.address}", "first-contact")
    ]

    # the application becomes a compose one whose file is in the private repository: read with the key
    r = await client.patch(
        f"/v1/applications/{app['id']}", headers=members.developer, json={"compose": {"path": "compose.yml"}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["compose"]["translated"]["file"] == {"path": "compose.yml", "commit": sha}


async def test_token_routes_are_write_only_and_the_command_carries_it_sealed(
    client, members, api_urls, scheduler, capfd
):
    token = "ghp_Sup3rS3cretT0ken0123456789"
    app = await make_app(client, members.developer, app_body("https://git.example.com/acme/private.git", "tok"))
    url = f"/v1/applications/{app['id']}/git-token"
    access_url = f"/v1/applications/{app['id']}/git-access"
    assert (await client.get(access_url, headers=members.viewer)).json()["uses"] == "token"
    problem(await client.put(url, headers=members.viewer, json={"token": token}), 403)
    r = await client.put(url, headers=members.developer, json={"token": token})
    assert r.status_code == 200 and r.json()["username"] == "x-access-token" and token not in r.text
    shown = await client.get(access_url, headers=members.viewer)
    assert shown.status_code == 200 and token not in shown.text
    assert shown.json()["token"]["username"] == "x-access-token"
    problem(await client.put(url, headers=members.other, json={"token": token}), 404)
    (sealed,) = await sealed_rows(api_urls)
    assert token.encode() not in sealed

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code in (201, 202), r.text
    (start,) = await scheduler.wait_for(START)
    auth = start.data["spec"]["source"]["auth"]
    assert (auth["kind"], auth["username"]) == ("https", "x-access-token") and auth["token"].startswith("sealed:v1:")
    assert start.data["spec"]["source"]["repository"] == "https://git.example.com/acme/private.git"
    assert token.encode() not in start.raw
    record = await client.get(f"/v1/deployments/{start.data['deployment_id']}", headers=members.viewer)
    assert token not in record.text and record.json()["spec"]["source"]["auth"]["token"] is None
    out, err = capfd.readouterr()
    assert token not in out and token not in err

    problem(await client.delete(url, headers=members.developer), 403)
    assert (await client.delete(url, headers=members.admin)).status_code == 204
    assert (await client.get(access_url, headers=members.viewer)).json()["token"] is None
    problem(await client.delete(url, headers=members.admin), 404)


async def test_a_new_deploy_key_pins_the_host_keys_given_with_it(client, members):
    from berth_common import ssh_keys

    app = await make_app(client, members.developer, app_body("ssh://git@git.example.com/acme/app.git", "pinme"))
    url = f"/v1/applications/{app['id']}/deploy-key"
    access_url = f"/v1/applications/{app['id']}/git-access"
    host = " ".join(ssh_keys.generate_key_pair()[1].split()[:2])
    err = problem(await client.post(url, headers=members.developer, json={"host_keys": ["ssh-ed25519 nope"]}), 422)
    assert err["errors"][0]["loc"] == "/body/host_keys"
    assert (await client.get(access_url, headers=members.viewer)).json()["deploy_key"] is None  # nothing half-made
    r = await client.post(url, headers=members.developer, json={"host_keys": [host]})
    assert r.status_code == 201, r.text
    assert [(p["host"], f"{p['key_type']} {p['key']}", p["source"]) for p in r.json()["host_keys"]] == [
        ("git.example.com", host, "given")
    ]
    https = await make_app(client, members.developer, app_body("https://git.example.com/acme/app.git", "tokened"))
    err = problem(
        await client.post(
            f"/v1/applications/{https['id']}/deploy-key", headers=members.developer, json={"host_keys": [host]}
        ),
        422,
    )
    assert err["errors"][0]["loc"] == "/body/host_keys" and "ssh://" in err["errors"][0]["detail"]
