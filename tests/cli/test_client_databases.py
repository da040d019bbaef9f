"""``berth db list|create|show`` and ``berth db backup list|run`` against the real api (the scheduler's part
played on the bus), by exact output; a destination and a database named by name."""

from __future__ import annotations

import json

from tests.api.conftest import bearer
from tests.api.test_backups_api import _database, cmds  # noqa: F401  (fixture)


def _when(ts: str | None) -> str:
    return ts[:19].replace("T", " ") if ts else "-"


async def test_databases_and_their_backups(logged_in, client, api, cmds):  # noqa: F811
    berth, admin = logged_in, bearer(api.admin_token())
    backups, _, databases = cmds
    r = await berth("db", "create", "cache", "--engine", "redis", "--json")
    assert r.code == 0, r
    cache = json.loads(r.out)
    assert (cache["name"], cache["engine"], cache["state"]) == ("cache", "redis", "starting")
    r = await berth("db", "create", "sessions", "--engine", "redis", "--version", cache["version"])
    listed = (await client.get("/v1/databases", headers=admin)).json()
    sessions = next(d for d in listed if d["name"] == "sessions")
    assert r.out == f"Created database sessions (redis {cache['version']}, {sessions['id']}): starting\n"
    made = await _database(client, admin, databases, name="orders")  # made running by the scheduler's stand-in
    db = (await client.get(f"/v1/databases/{made['id']}", headers=admin)).json()

    listed = (await client.get("/v1/databases", headers=admin)).json()
    head = ["NAME", "ENGINE", "VERSION", "STATE", "ADDRESS", "ID"]
    rows = [head] + [
        [d["name"], d["engine"], d["version"], d["state"], f"{d['host']}:{d['port']}", d["id"]] for d in listed
    ]
    widths = [max(len(x) for x in col) for col in zip(*rows)]
    r = await berth("db", "list")
    assert r.out == "".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n" for row in rows)
    assert sorted(line.split()[0] for line in r.out.splitlines()[1:]) == ["cache", "orders", "sessions"]
    assert json.loads((await berth("db", "list", "--json")).out) == listed
    r = await berth("db", "show", "orders")
    assert r.out == (
        "name:     orders\n"
        f"id:       {db['id']}\n"
        f"engine:   postgresql {db['version']}\n"
        "state:    running\n"
        f"address:  {db['host']}:{db['port']}\n"
        "database: orders\n"
        "user:     orders\n"
        f"variable: {db['variable']}\n"
        "server:   local\n"
        "backup:   -\n"
    )
    assert "password" not in r.out.lower()
    assert json.loads((await berth("db", "show", db["id"], "--json")).out) == db

    directory = {"kind": "directory", "name": "here", "path": "/var/backups/berth"}
    dest = (await client.post("/v1/backup-destinations", headers=admin, json=directory)).json()
    r = await berth("db", "backup", "run", "orders", "--to", "here")
    listed = (await client.get(f"/v1/databases/{db['id']}/backups", headers=admin)).json()
    (backup,) = listed
    assert (r.code, r.out) == (0, f"Backup {backup['id']} of orders: requested (berth db backup list orders)\n")
    ((_, _, env),) = await backups.wait_for("cmd.backup.start")
    assert env.data["destinations"][0]["path"] == dest["path"] == "/var/backups/berth"
    r = await berth("db", "backup", "list", "orders")
    assert r.out == (
        "ID                                STATE      COMPRESSION  ENCRYPTED  OBJECTS  CREATED              REASON\n"
        f"{backup['id']}  requested  zstd         no         0        {_when(backup['created_at'])}\n"
    )
    assert json.loads((await berth("db", "backup", "list", "orders", "--json")).out) == listed

    r = await berth("db", "backup", "run", "orders", "--to", "nowhere")
    assert (r.code, r.err) == (1, "berth: Not found: no backup destination 'nowhere'\n")
    r = await berth("db", "create", "orders", "--engine", "oracle")
    assert r.code == 1 and r.err.startswith("berth: Invalid request") and "\n  engine: " in r.err
