"""A minor-version upgrade end to end: the api, the real scheduler (in-process), a real S3 API (moto) and a
PostgreSQL database created through the api on this machine's Docker. The upgrade's backup is taken first
and verified in the bucket, then the container is made again with the new version's image (here a second
tag of the local PostgreSQL image, through the scheduler's image map) on the same volume: the rows are
the same, and the database reports the new version."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from berth_api.adapters.tables import teams
from berth_common import dbengines
from berth_scheduler.settings import SchedulerSettings
from tests.api.test_backups_e2e import ROWS, _psql, _until, moto_destination, shop_with_rows
from tests.scheduler.platform import Scheduler
from tests.support import images
from tests.support.s3 import MotoS3

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture
async def platform(nats_server, api, api_urls, identities, tmp_path):
    try:
        base = images.postgres_image()
    except Exception as exc:  # no Debian mirror or no Docker here
        pytest.skip(f"no PostgreSQL image: {exc}")
    minor = f"berth-test/pg-{uuid.uuid4().hex[:10]}:15.9"
    images.docker("tag", base, minor)
    s3 = MotoS3(tmp_path / "moto.log").start()
    settings = SchedulerSettings(
        nats_url=nats_server.url,
        database_url=api_urls["scheduler"],
        secret_key="test-secret",
        http_port=0,
        image_map=json.dumps({"postgres:15.9": minor}),
    )
    scheduler = await Scheduler(settings).start()
    made: list[str] = []
    yield s3, made, minor
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
    subprocess.run([images.DOCKER, "rmi", minor], capture_output=True)


async def test_an_upgrade_through_the_api_backs_up_first_and_keeps_the_rows(client, members, platform):
    s3, made, minor = platform
    bucket = s3.make_bucket(f"berth-{uuid.uuid4().hex[:8]}")
    db, password, expected = await shop_with_rows(client, members, made)
    dest_id = await moto_destination(client, members, s3, bucket)
    r = await client.post(
        f"/v1/databases/{db['id']}/upgrade",
        headers=members.developer,
        json={"version": "15.9", "destinations": [dest_id]},
    )
    assert r.status_code == 202, r.text
    upgrade = r.json()
    assert upgrade["state"] == "backing_up" and upgrade["backup_id"]

    async def upgrade_state() -> dict:
        listed = (await client.get(f"/v1/databases/{db['id']}/upgrades", headers=members.viewer)).json()
        return next(u for u in listed if u["id"] == upgrade["id"])

    backup = await _until(client, members.viewer, f"/v1/backups/{upgrade['backup_id']}", "succeeded")
    (obj,) = backup["objects"]
    assert s3.objects(bucket, "db/")[obj["key"]] == obj["size"]  # verified in the bucket before the switch
    for _ in range(600):
        done = await upgrade_state()
        if done["state"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.3)
    assert done["state"] == "succeeded", done
    got = await _until(client, members.viewer, f"/v1/databases/{db['id']}", "running")
    assert got["version"] == "15.9"
    inspected = json.loads(images.docker("inspect", dbengines.container_name(db["id"])))[0]
    assert inspected["Config"]["Image"] == minor
    assert _psql(db["id"], password, ROWS, "shop") == expected
