"""One build per build id, at-least-once delivery: a duplicate arriving while the build runs here waits
and gets the same result; a build left running by a worker whose heartbeat stopped is taken over; one
with a fresh heartbeat is waited for (real nats-server and Postgres; git against a silent server)."""

from __future__ import annotations

import asyncio
import socket

import asyncpg

from tests.builder.support import Running


async def _db(b: Running) -> asyncpg.Connection:
    return await asyncpg.connect(b.settings.database_url.get_secret_value().replace("+asyncpg", ""))


async def test_duplicate_while_running_gets_the_same_result(builder_factory, unique):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        b = await builder_factory(clone_timeout_s=2.0, max_concurrent_builds=2)
        url = f"git://127.0.0.1:{silent.getsockname()[1]}/app.git"
        cmd = await b.start_build(build_id=f"dup-{unique}", repository=url, image_tag="berth-test/x:1")
        await asyncio.sleep(0.3)
        await b.api.publish(cmd)  # a second message for the same build while the first is cloning
        first = await b.result(cmd.build_id, timeout=30)
        second = await b.result(cmd.build_id, timeout=30, after=1)
    finally:
        silent.close()
    assert first["type"] == second["type"] == "evt.build.failed"
    assert first["data"]["stage"] == "clone"
    assert first["data"]["reason"].startswith(f"cloning {url} (ref 'main') timed out after 2s")
    assert first["data"] == second["data"] and first["id"] != second["id"]
    assert b.handler.pipeline.git.started == 1  # one ls-remote, never a second attempt
    conn = await _db(b)
    try:
        assert await conn.fetchval("SELECT attempts FROM builds WHERE build_id = $1", cmd.build_id) == 1
    finally:
        await conn.close()


async def test_stale_build_is_taken_over_and_fresh_one_waited_for(builder_factory, unique, tmp_path):
    b = await builder_factory(allow_local_git=True, heartbeat_s=0.2, stale_after_s=30)
    conn = await _db(b)
    try:
        for name, age in (("stale", "1 hour"), ("fresh", "0 seconds")):
            await conn.execute(
                "INSERT INTO builds (build_id, deployment_id, application_id, status, repository, ref, image_tag, "
                f"attempts, heartbeat_at) VALUES ($1, 'd', 'a', 'running', 'r', 'main', 't', 1, now() - interval '{age}')",
                f"{name}-{unique}",
            )
        stale = await b.start_build(
            build_id=f"stale-{unique}", repository=str(tmp_path / "absent"), image_tag="berth-test/x:1"
        )
        fresh = await b.start_build(
            build_id=f"fresh-{unique}", repository=str(tmp_path / "absent"), image_tag="berth-test/x:1"
        )
        evt = await b.result(stale.build_id, timeout=30)
        assert evt["data"]["stage"] == "clone"
        assert await conn.fetchval("SELECT attempts FROM builds WHERE build_id = $1", stale.build_id) == 2
        await asyncio.sleep(1.5)
        assert not [e for e in b.events if e["data"]["build_id"] == fresh.build_id]  # another worker's, alive
        await conn.execute(
            "UPDATE builds SET heartbeat_at = now() - interval '1 hour' WHERE build_id = $1", fresh.build_id
        )
        evt = await b.result(fresh.build_id, timeout=30)  # its worker went silent: taken over
        assert evt["data"]["stage"] == "clone"
        assert await conn.fetchval("SELECT attempts FROM builds WHERE build_id = $1", fresh.build_id) == 2
    finally:
        await conn.close()


async def test_docker_unreachable_is_retried_then_fails_with_a_reason(builder_factory, unique, tmp_path):
    from tests.builder.support import make_repo

    make_repo(tmp_path / "repo", {"Dockerfile": "FROM scratch\nCOPY Dockerfile /\n"})
    b = await builder_factory(
        allow_local_git=True,
        docker_host=f"unix://{tmp_path}/no-docker.sock",
        max_deliver=2,
        nak_backoff_s=[0.2],
    )
    cmd = await b.start_build(build_id=f"nod-{unique}", repository=str(tmp_path / "repo"), image_tag="berth-test/x:1")
    evt = await b.result(cmd.build_id, timeout=30)
    assert evt["type"] == "evt.build.failed" and evt["data"]["stage"] == "internal"
    assert evt["data"]["reason"].startswith("the builder could not reach the Docker engine")
    conn = await _db(b)
    try:
        assert await conn.fetchval("SELECT attempts FROM builds WHERE build_id = $1", cmd.build_id) == 2
    finally:
        await conn.close()
    assert len([e for e in b.events if e["data"]["build_id"] == cmd.build_id]) == 1
