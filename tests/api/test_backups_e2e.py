"""Backups end to end: the api, the real scheduler (in-process), a real S3 API (moto) and a PostgreSQL database
created through the api on this machine's Docker. Rows written into it are backed up to the bucket, the
backup is listed succeeded with its verified object, and restoring it into a new database (made by the api)
gives the same rows there."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from berth_api.adapters.tables import teams
from berth_common import dbengines
from berth_scheduler.settings import SchedulerSettings
from tests.scheduler.platform import Scheduler
from tests.support import images
from tests.support.s3 import MotoS3

pytestmark = pytest.mark.slow
ROWS = "SELECT count(*) || ':' || md5(string_agg(id || '=' || name, ',' ORDER BY id)) FROM items"


@pytest.fixture
async def platform(nats_server, api, api_urls, identities, tmp_path):
    try:
        images.postgres_image()
    except Exception as exc:  # no Debian mirror or no Docker here
        pytest.skip(f"no PostgreSQL image: {exc}")
    s3 = MotoS3(tmp_path / "moto.log").start()
    settings = SchedulerSettings(
        nats_url=nats_server.url, database_url=api_urls["scheduler"], secret_key="test-secret", http_port=0
    )
    scheduler = await Scheduler(settings).start()
    made: list[str] = []
    yield s3, made
    with contextlib.suppress(Exception):
        await scheduler.stop()
    s3.stop()
    async with identities.sessionmaker() as s:
        team_ids = [r.id for r in (await s.execute(sa.select(teams.c.id))).all()]
    for database_id in made:
        subprocess.run([images.DOCKER, "rm", "-f", dbengines.container_name(database_id)], capture_output=True)
        subprocess.run([images.DOCKER, "volume", "rm", dbengines.volume_name(database_id)], capture_output=True)
    for team_id in team_ids:
        subprocess.run([images.DOCKER, "network", "rm", dbengines.team_network(team_id)], capture_output=True)


async def _until(client, headers, path: str, state: str, timeout: float = 180) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = (await client.get(path, headers=headers)).json()
        if got.get("state") == state:
            return got
        assert got.get("state") != "failed", got
        assert asyncio.get_running_loop().time() < deadline, f"{path} never {state}: {got}"
        await asyncio.sleep(0.3)


def _psql(database_id: str, password: str, sql: str, database: str) -> str:
    argv = [images.DOCKER, "exec", "-e", f"PGPASSWORD={password}", dbengines.container_name(database_id)]
    argv += ["psql", "-h", "127.0.0.1", "-U", database, "-d", database, "-At", "-c", sql]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


async def _password(client, headers, database_id: str) -> str:
    url = (await client.get(f"/v1/databases/{database_id}/connection", headers=headers)).json()["url"]
    return url.split(":")[2].split("@")[0]


async def shop_with_rows(client, members, made: list[str]) -> tuple[dict, str, str]:
    """A PostgreSQL database ``shop`` made through the api, running, with 5,000 rows in ``items``: its
    answer, its password and the checksum of its rows."""
    r = await client.post(
        "/v1/databases", headers=members.admin, json={"name": "shop", "engine": "postgresql", "version": "15"}
    )
    assert r.status_code == 201, r.text
    db = r.json()
    made.append(db["id"])
    await _until(client, members.viewer, f"/v1/databases/{db['id']}", "running")
    password = await _password(client, members.admin, db["id"])
    _psql(db["id"], password, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)", "shop")
    _psql(db["id"], password, "INSERT INTO items SELECT i, md5(i::text) FROM generate_series(1, 5000) i", "shop")
    return db, password, _psql(db["id"], password, ROWS, "shop")


async def moto_destination(client, members, s3: MotoS3, bucket: str) -> str:
    """A backup destination on the test's S3 server (prefix ``db/``); its id."""
    dest = {
        "kind": "s3",
        "name": "moto",
        "endpoint": s3.endpoint,
        "bucket": bucket,
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
        "prefix": "db/",
    }
    r = await client.post("/v1/backup-destinations", headers=members.admin, json=dest)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_backup_to_s3_and_restore_into_a_new_database(client, members, platform):
    s3, made = platform
    bucket = s3.make_bucket(f"berth-{uuid.uuid4().hex[:8]}")
    db, _, expected = await shop_with_rows(client, members, made)
    dest_id = await moto_destination(client, members, s3, bucket)
    r = await client.post(
        f"/v1/databases/{db['id']}/backups", headers=members.developer, json={"destinations": [dest_id]}
    )
    assert r.status_code == 202, r.text
    backup = await _until(client, members.viewer, f"/v1/backups/{r.json()['id']}", "succeeded")
    (obj,) = backup["objects"]
    assert s3.objects(bucket, "db/")[obj["key"]] == obj["size"]
    listed = (await client.get(f"/v1/databases/{db['id']}/backups", headers=members.viewer)).json()
    assert [b["state"] for b in listed] == ["succeeded"]

    r = await client.post(
        f"/v1/databases/{db['id']}/restore", headers=members.developer, json={"backup_id": backup["id"], "name": "copy"}
    )
    assert r.status_code == 202, r.text
    restore = r.json()
    made.append(restore["target_database_id"])
    done = await _until(client, members.viewer, f"/v1/restores/{restore['id']}", "succeeded", timeout=240)
    assert done["log"], done
    copy_password = await _password(client, members.admin, restore["target_database_id"])
    assert _psql(restore["target_database_id"], copy_password, ROWS, "copy") == expected
