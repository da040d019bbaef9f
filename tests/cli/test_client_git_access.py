"""Applications from private repositories through ``berth apps create``: an access token read from stdin
(never on the command line) reaches a deployment sealed for the builder and shows nowhere; a deploy key made
by Berth is printed for the forge (and shown, made or rotated later by ``berth apps deploy-key``); a given
private key with its pinned host key; options that do not fit are refused before anything is sent."""

from __future__ import annotations

import json

from berth_common import sealing, ssh_keys
from tests.api.conftest import bearer

GIT = ("--project", "acme", "--port", "80")
TOKEN = "ghp_s3cretTokenValue42"


def _key_text(key: dict) -> str:
    return (
        "Add this public key to the repository as a read-only deploy key:\n"
        f"  {key['public_key']}\n"
        f"fingerprint: {key['fingerprint']}\n"
    )


async def test_a_token_from_stdin_reaches_the_deployment_sealed(logged_in, client, api, scheduler):
    berth, admin = logged_in, bearer(api.admin_token())
    assert (await berth("projects", "create", "acme")).code == 0
    repo = "https://git.example.com/acme/private.git"
    r = await berth("apps", "create", "priv", *GIT, "--git", repo, "--git-token-stdin", "--json", input=TOKEN + "\n")
    assert r.code == 0, r
    app = json.loads(r.out)
    assert TOKEN not in r.out + r.err
    shown = (await client.get(f"/v1/applications/{app['id']}/git-access", headers=admin)).json()
    assert shown["uses"] == "token" and shown["token"]["username"] == "x-access-token" and shown["deploy_key"] is None

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin)
    assert r.status_code in (201, 202), r.text
    (start,) = await scheduler.wait_for("cmd.deployment.start")
    auth = start.data["spec"]["source"]["auth"]
    assert (auth["kind"], auth["username"]) == ("https", "x-access-token")
    assert sealing.unseal(auth["token"], "berth/git/https/token") == TOKEN
    assert TOKEN.encode() not in start.raw

    # another user name; an empty stdin, a prompt without a terminal: refused, nothing made
    r = await berth(
        "apps", "create", "priv2", *GIT, "--git", repo, "--git-token-stdin", "--git-username", "oauth2", input=TOKEN
    )
    assert r.code == 0, r
    assert r.out.startswith("Created application priv2 (")
    detail = json.loads((await berth("apps", "show", "priv2", "--json")).out)
    shown = (await client.get(f"/v1/applications/{detail['id']}/git-access", headers=admin)).json()
    assert shown["token"]["username"] == "oauth2"
    r = await berth("apps", "create", "priv3", *GIT, "--git", repo, "--git-token-stdin", input="\n")
    assert r.code == 2 and "the token is empty" in r.err, r
    r = await berth("apps", "create", "priv3", *GIT, "--git", repo, "--git-token")
    assert r.code == 2 and "no terminal to ask: use --git-token-stdin" in r.err, r
    # a token for an ssh:// repository: the api's problem, naming the field
    r = await berth(
        "apps", "create", "priv3", *GIT, "--git", "ssh://git@git.example.com/a/b.git", "--git-token-stdin", input=TOKEN
    )
    assert r.code == 1 and "/body/git_access" in r.err and TOKEN not in r.err, r
    names = [a["name"] for a in json.loads((await berth("apps", "list", "--json")).out)]
    assert sorted(names) == ["priv", "priv2"]


async def test_a_deploy_key_made_by_berth_is_printed_for_the_forge(logged_in, client, api, tmp_path):
    berth, admin = logged_in, bearer(api.admin_token())
    assert (await berth("projects", "create", "acme")).code == 0
    repo = "ssh://git@git.example.com/acme/private.git"
    r = await berth("apps", "create", "keyed", *GIT, "--git", repo, "--deploy-key")
    assert r.code == 0, r
    app_id = r.out.split("(", 1)[1].split(")", 1)[0]
    key = (await client.get(f"/v1/applications/{app_id}/git-access", headers=admin)).json()["deploy_key"]
    assert key["public_key"].startswith("ssh-ed25519 ") and key["public_key"].endswith(f"berth-{app_id}")
    assert r.out == (f"Created application keyed ({app_id}); deploy it with: berth deploy {app_id}\n" + _key_text(key))
    assert "PRIVATE" not in r.out + r.err

    r = await berth("apps", "deploy-key", "keyed")  # shown again, the same key
    assert (r.code, r.out) == (0, _key_text(key))
    r = await berth("apps", "deploy-key", "keyed", "--rotate", "--json")
    assert r.code == 0, r
    rotated = json.loads(r.out)
    assert rotated["public_key"] != key["public_key"] and rotated["rotated_at"] is not None
    shown = (await client.get(f"/v1/applications/{app_id}/git-access", headers=admin)).json()["deploy_key"]
    assert shown["public_key"] == rotated["public_key"]

    # --json carries the key with the application
    r = await berth("apps", "create", "keyed2", *GIT, "--git", repo, "--deploy-key", "--json")
    assert r.code == 0, r
    both = json.loads(r.out)
    assert both["name"] == "keyed2" and both["deploy_key"]["public_key"].endswith(f"berth-{both['id']}")

    # a private key given from a file, with the server's host key pinned as given
    private, public = ssh_keys.generate_key_pair()
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(private)
    host = " ".join(ssh_keys.generate_key_pair()[1].split()[:2])  # a host key is a public key like any
    r = await berth(
        "apps", "create", "given", *GIT, "--git", repo, "--deploy-key-file", str(key_file), "--host-key", host
    )
    assert r.code == 0, r
    assert "PRIVATE" not in r.out + r.err
    detail = json.loads((await berth("apps", "show", "given", "--json")).out)
    shown = (await client.get(f"/v1/applications/{detail['id']}/git-access", headers=admin)).json()["deploy_key"]
    assert shown["public_key"].split()[:2] == public.split()[:2]
    assert [(p["host"], f"{p['key_type']} {p['key']}", p["source"]) for p in shown["host_keys"]] == [
        ("git.example.com", host, "given")
    ]

    # a key Berth makes, with the server's host key pinned from the command line too
    r = await berth("apps", "create", "pinned", *GIT, "--git", repo, "--deploy-key", "--host-key", host, "--json")
    assert r.code == 0, r
    made = json.loads(r.out)
    shown = (await client.get(f"/v1/applications/{made['id']}/git-access", headers=admin)).json()["deploy_key"]
    assert shown["public_key"] == made["deploy_key"]["public_key"]
    assert [(p["host"], f"{p['key_type']} {p['key']}", p["source"]) for p in shown["host_keys"]] == [
        ("git.example.com", host, "given")
    ]


async def test_options_that_do_not_fit_are_refused_before_anything_is_sent(logged_in):
    berth = logged_in
    assert (await berth("projects", "create", "acme")).code == 0
    cases = [
        (("--image", "nginx:1", "--deploy-key"), "a credential is for a git repository (--git)"),
        (("--git", "ssh://git@h/a.git", "--deploy-key", "--git-token-stdin"), "give one of --deploy-key, --git-token-stdin"),
        (("--git", "ssh://git@h/a.git", "--git-token-stdin", "--host-key", "ssh-ed25519 AAAA"), "host keys go with --deploy-key or --deploy-key-file"),
        (("--git", "ssh://git@h/a.git", "--deploy-key-file", "/nonexistent/key"), "cannot read /nonexistent/key"),
    ]  # fmt: skip
    for args, message in cases:
        r = await berth("apps", "create", "nope", *GIT, *args)
        assert r.code == 2 and message in r.err, (args, r)
    assert json.loads((await berth("apps", "list", "--json")).out) == []
