"""``berth db list|create|show`` and ``berth db backup list|run`` against the real api (the scheduler's part
played on the bus), by exact output; a destination and a database named by name."""

from __future__ import annotations

import asyncio
import json

from tests.api.conftest import bearer
from tests.api.test_backups_api import _changed, _until, cmds  # noqa: F401  (fixture)


def _when(ts: str | None) -> str:
    return ts[:19].replace("T", " ") if ts else "-"


async def _running(client, headers, databases, db: dict) -> dict:
    for _ in range(200):
        runs = [e for subject, _, e in databases.commands if subject == "cmd.database.run"]
        if env := next((e for e in runs if e.data["spec"]["database_id"] == db["id"]), None):
            break
        await asyncio.sleep(0.05)
    assert env is not None, "no cmd.database.run"
    await _changed(databases, env, "running")
    return await _until(client, headers, f"/v1/databases/{db['id']}", "running")


async def test_databases_and_their_backups(logged_in, client, api, cmds):  # noqa: F811
    berth, admin = logged_in, bearer(api.admin_token())
    backups, _, databases = cmds
    r = await berth("db", "create", "orders", "--engine", "postgresql", "--config", "max_connections=50", "--json")
    assert r.code == 0, r
    created = json.loads(r.out)
    assert created["config"] == {"max_connections": "50"}
    db = await _running(client, admin, databases, created)

    r = await berth("db", "list")
    address = f"{db['host']}:{db['port']}"
    assert r.out == (
        f"NAME    ENGINE      VERSION  STATE    {'ADDRESS':<{len(address)}}  ID\n"
        f"orders  postgresql  {db['version']:<7}  running  {address}  {db['id']}\n"
    )
    assert (
        json.loads((await berth("db", "list", "--json")).out)
        == (await client.get("/v1/databases", headers=admin)).json()
    )
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
