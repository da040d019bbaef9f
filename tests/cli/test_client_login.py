"""``berth login`` and contexts: the token is checked, stored 0600 in the XDG config directory and never
printed; several contexts, picked by ``context use``, ``--context`` or BERTH_CONTEXT; BERTH_TOKEN and
BERTH_API_URL work without a file; a refused token shows the api's problem."""

from __future__ import annotations

import json
import stat

from berth_cli.commands.auth import in_clear


async def test_login_stores_the_token_0600_and_never_prints_it(berth, api):
    token = api.admin_token()
    r = await berth("login", api.url, "--token-stdin", input=token + "\n")
    assert r.code == 0, r
    assert r.out == f"Logged in to {api.url} as admin@localhost (team default, role admin); context default\n"
    assert token not in r.out + r.err
    path = berth.config_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {
        "current": "default",
        "contexts": {"default": {"api_url": api.url, "token": token}},
    }


async def test_contexts_list_use_and_pick(berth, api, members):
    admin = api.admin_token()
    viewer = members.viewer["Authorization"].removeprefix("Bearer ")
    assert (await berth("login", api.url, "--token-stdin", input=admin)).code == 0
    r = await berth("login", api.url + "/", "--context", "ci", "--token-stdin", input=viewer)
    assert r.out == f"Logged in to {api.url} as view@example.com (team default, role viewer); context ci\n"
    assert stat.S_IMODE(berth.config_file.stat().st_mode) == 0o600

    r = await berth("context", "list")
    assert (r.code, r.out) == (0, f"CURRENT  NAME     API\n*        ci       {api.url}\n         default  {api.url}\n")
    r = await berth("context", "list", "--json")
    assert json.loads(r.out) == [
        {"name": "ci", "api_url": api.url, "current": True},
        {"name": "default", "api_url": api.url, "current": False},
    ]
    assert viewer not in r.out and admin not in r.out

    # The viewer may not create a project; the admin context may.
    r = await berth("projects", "create", "acme")
    assert (r.code, r.out) == (1, "")
    assert r.err.startswith("berth: Forbidden")
    r = await berth("--context", "default", "projects", "create", "acme")
    assert r.code == 0 and r.out.startswith("Created project acme (")
    r = await berth("projects", "create", "blog", env={"BERTH_CONTEXT": "default"})
    assert r.code == 0, r

    r = await berth("context", "use", "default")
    assert r.out == f"Using context default ({api.url})\n"
    assert json.loads(berth.config_file.read_text())["current"] == "default"
    r = await berth("context", "use", "nope")
    assert (r.code, r.err) == (1, "berth: no context 'nope' (berth context list)\n")

    r = await berth("logout", "ci")
    assert (r.code, r.out) == (0, "Forgot context ci\n")
    assert list(json.loads(berth.config_file.read_text())["contexts"]) == ["default"]


async def test_environment_token_without_a_file(berth, api, client):
    r = await berth("projects", "list")
    assert (r.code, r.out, r.err) == (1, "", "berth: not logged in: run `berth login` (or set BERTH_TOKEN)\n")
    env = {"BERTH_API_URL": api.url, "BERTH_TOKEN": api.admin_token()}
    r = await berth("projects", "list", "--json", env=env)
    assert (r.code, json.loads(r.out)) == (0, [])
    assert not berth.config_file.exists()
    # The environment wins over a stored context.
    assert (await berth("login", api.url, "--token-stdin", input=api.admin_token())).code == 0
    r = await berth("projects", "list", env={"BERTH_TOKEN": "brt_wrong"})
    assert r.code == 1 and r.err.startswith("berth: Authentication required")


async def test_a_refused_token_is_not_stored(berth, api):
    r = await berth("login", api.url, "--token-stdin", input="brt_not-a-token\n")
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("berth: Authentication required")
    assert "brt_not-a-token" not in r.err
    assert not berth.config_file.exists()


async def test_an_api_that_cannot_be_reached(berth):
    r = await berth("login", "http://127.0.0.1:9", "--token-stdin", input="x\n")
    assert r.code == 1 and r.err.startswith("berth: The api cannot be reached: http://127.0.0.1:9: ConnectError")


def test_plain_http_is_warned_about_off_this_machine():
    assert [in_clear(u) for u in ("http://127.0.0.1:8420", "http://localhost", "http://[::1]:80")] == [False] * 3
    assert [in_clear(u) for u in ("http://berth.example.com", "http://10.0.0.5:8420")] == [True, True]
    assert in_clear("https://berth.example.com") is False
