"""A database's restores as a list (``GET /v1/databases/{id}/restores``), on the real api and bus with the
scheduler's part played as in ``test_backups_api``: newest first, in pages (``limit``, then ``before`` the
last of a page, which the ``Link: rel="next"`` header gives while there is an older page), for viewers,
without another database's restores nor anything the restore command carries (the object's key, its
checksum, the destination's secret); another team's database answers 404."""

from __future__ import annotations

import pytest

from tests.api.test_backups_api import SECRET, _database, _s3, _succeeded_backup
from tests.api.test_backups_api import cmds as cmds  # the fixture: the scheduler's doubles

SHOWN = {
    "id",
    "database_id",
    "backup_id",
    "target",
    "target_database_id",
    "state",
    "reason",
    "pre_backup_id",
    "duration_s",
    "created_at",
    "finished_at",
}


@pytest.fixture
async def restored(client, members, cmds):
    """A database with three restores (two into new databases, the newest over itself) and another
    database with one; the first database and its restores' ids, oldest first."""
    _, _, databases = cmds
    db = await _database(client, members.developer, databases)
    other = await _database(client, members.developer, databases, name="invoices")
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    backup, _ = await _succeeded_backup(client, members, cmds, db, dest)
    theirs, _ = await _succeeded_backup(client, members, cmds, other, dest)
    made = []
    for body in (
        {"backup_id": backup["id"], "name": "copy-1"},
        {"backup_id": backup["id"], "name": "copy-2"},
        {"backup_id": backup["id"], "target": "existing", "confirm": True},
    ):
        r = await client.post(f"/v1/databases/{db['id']}/restore", headers=members.admin, json=body)
        assert r.status_code == 202, r.text
        made.append(r.json()["id"])
    body = {"backup_id": theirs["id"], "name": "invoices-copy"}
    r = await client.post(f"/v1/databases/{other['id']}/restore", headers=members.admin, json=body)
    assert r.status_code == 202, r.text
    return db, made


async def test_a_databases_restores_newest_first_in_pages(client, members, restored):
    db, made = restored
    path = f"/v1/databases/{db['id']}/restores"
    r = await client.get(path, headers=members.viewer)
    assert r.status_code == 200, r.text
    got = r.json()
    assert [x["id"] for x in got] == made[::-1]  # newest first, and none of the other database's
    assert all(set(x) == SHOWN for x in got), got[0]
    assert got[0]["target"] == "existing" and got[0]["target_database_id"] == db["id"] and got[0]["pre_backup_id"]
    assert got[1]["target"] == "new" and got[1]["state"] == "waiting"
    assert SECRET not in r.text and ".dump.gz" not in r.text and "a" * 64 not in r.text

    assert "link" not in r.headers  # all of them on one page
    r = await client.get(path, headers=members.viewer, params={"limit": 2})
    first = r.json()
    assert [x["id"] for x in first] == made[:0:-1]
    assert r.headers["link"] == f'<{path}?limit=2&before={first[-1]["id"]}>; rel="next"'  # the older page
    r = await client.get(r.headers["link"].split(">")[0].removeprefix("<"), headers=members.viewer)
    assert [x["id"] for x in r.json()] == made[:1] and "link" not in r.headers  # the last page
    r = await client.get(path, headers=members.viewer, params={"limit": 1, "before": made[1]})
    assert [x["id"] for x in r.json()] == made[:1] and "link" not in r.headers  # exactly full: no next page
    assert (await client.get(path, headers=members.viewer, params={"before": made[0]})).json() == []


async def test_the_list_is_the_teams_and_checks_its_query(client, members, restored):
    db, _ = restored
    path = f"/v1/databases/{db['id']}/restores"
    r = await client.get(path, headers=members.other)
    assert r.status_code == 404 and db["id"] in r.json()["detail"]
    assert (await client.get(f"/v1/databases/{'f' * 32}/restores", headers=members.viewer)).status_code == 404
    for query, field in (({"limit": 0}, "/query/limit"), ({"limit": 201}, "/query/limit"), ({"before": "x y"}, None)):
        r = await client.get(path, headers=members.viewer, params=query)
        assert r.status_code == 422, (query, r.text)
        if field:
            assert r.json()["errors"][0]["loc"] == field
    r = await client.get(path, headers=members.viewer, params={"before": "e" * 32})  # not one of its restores
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/query/before"
