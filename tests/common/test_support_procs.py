"""The test suite's own launchers: a fixture's nats-server ends at once, a restarted one keeps its store; a
migrated database template that tests copy."""

from __future__ import annotations

import signal
import socket
import uuid
from pathlib import Path

import asyncpg
import nats
from nats.js.api import ConsumerConfig, StreamConfig

from tests.support.procs import NatsServer, create_database, migrated_template


async def _declare(url: str, consumers: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="KEEP", subjects=["keep.>"]))
    for i in range(consumers):
        await js.add_consumer("KEEP", ConsumerConfig(durable_name=f"c{i}", filter_subject=f"keep.{i}"))
    await js.publish("keep.0", b"kept")
    await nc.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def test_kill_ends_the_server_at_once_without_its_graceful_shutdown(tmp_path: Path):
    server = NatsServer(tmp_path).start()
    await _declare(server.url, consumers=30)
    server.kill()
    assert server.proc is not None and server.proc.proc is not None
    assert server.proc.proc.returncode == -signal.SIGKILL
    assert not _listening(server.port)
    assert "Initiating JetStream Shutdown" not in (tmp_path / "nats.log").read_text()


async def test_a_stopped_server_starts_again_with_its_streams(tmp_path: Path):
    server = NatsServer(tmp_path).start()
    await _declare(server.url, consumers=1)
    server.stop()
    assert "JetStream Shutdown" in (tmp_path / "nats.log").read_text()
    server.start()
    try:
        nc = await nats.connect(server.url)
        info = await nc.jetstream().stream_info("KEEP")
        await nc.close()
        assert info.state.messages == 1
    finally:
        server.kill()


async def test_a_copy_of_a_migrated_template_has_each_service_at_head(postgres):
    from alembic.script import ScriptDirectory

    from berth_common.db.migrate import _config
    from berth_proxy_sync.bootstrap import VERSIONS as PROXY_VERSIONS
    from berth_scheduler.bootstrap import VERSIONS as SCHEDULER_VERSIONS

    template = await migrated_template(postgres.admin_url, ("scheduler", "proxy-sync"))
    copy = await create_database(postgres.admin_url, f"t_{uuid.uuid4().hex[:12]}", template=template)
    conn = await asyncpg.connect(copy.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for schema, versions in (("scheduler", SCHEDULER_VERSIONS), ("proxy", PROXY_VERSIONS)):
            head = ScriptDirectory.from_config(_config(schema, versions)).get_current_head()
            assert await conn.fetchval(f'SELECT version_num FROM "{schema}".alembic_version') == head
            owner = await conn.fetchval("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", schema)
            assert owner == f"berth_{schema}"
    finally:
        await conn.close()
