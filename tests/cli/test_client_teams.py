"""``berth teams``: create a team (stored as a context, made current), list mine with the current one
marked, switch back (a token minted for that team), the last admin cannot leave, delete an empty team."""

from __future__ import annotations

import json


async def test_create_list_switch_leave_and_delete_a_team(logged_in, api):
    berth = logged_in
    r = await berth("teams", "create", "blue")
    assert r.code == 0, r
    assert r.out.startswith("Created team blue (") and r.out.endswith("); context blue is current\n")
    config = json.loads(berth.config_file.read_text())
    assert config["current"] == "blue" and set(config["contexts"]) == {"default", "blue"}
    assert config["contexts"]["blue"]["token"] not in r.out + r.err

    r = await berth("teams", "list")
    lines = r.out.splitlines()
    assert r.code == 0 and lines[0].split() == ["CURRENT", "NAME", "ROLE", "ID"]
    rows = [line.split() for line in lines[1:]]
    assert rows[0][:3] == ["*", "blue", "admin"] and rows[1][:2] == ["default", "admin"] and len(rows) == 2

    r = await berth("teams", "switch", "default", "--context", "home")
    assert (r.code, r.out) == (0, "Switched to team default (role admin); context home\n")
    r = await berth("teams", "list", "--json")
    assert sorted(t["name"] for t in json.loads(r.out)) == ["blue", "default"]

    r = await berth("--context", "blue", "teams", "leave", "blue")
    assert r.code == 1 and "last admin of team blue" in r.err
    r = await berth("teams", "switch", "nowhere")
    assert r.code == 1 and "nowhere" in r.err
    r = await berth("--context", "blue", "teams", "delete", "blue")
    assert (r.code, r.out) == (0, "Deleted team blue\n")
    r = await berth("teams", "list", "--json")
    assert [t["name"] for t in json.loads(r.out)] == ["default"]
