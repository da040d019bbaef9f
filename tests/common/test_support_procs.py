"""The test suite's own launchers: a fixture's nats-server ends at once, a restarted one keeps its store; a
migrated database template that tests copy."""

from __future__ import annotations

import signal
import socket
import uuid
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.js.api import ConsumerConfig, StreamConfig

from tests.support.procs import NatsServer, create_database, migrated_template, provisioned


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


async def test_a_copy_of_a_provisioned_template_is_provisioned_again_only_when_a_test_changed_its_roles(postgres):
    """Each api test's database is a copy of a provisioned template: its roles (the whole server's) and schemas
    are there already, unless a test rotated the roles' passwords (another secret key) or changed a schema."""
    from berth_common.db.provision import provision

    services = ("api", "metrics")
    template = f"tmpl_{uuid.uuid4().hex[:12]}"
    await provision(await create_database(postgres.admin_url, template), "test-secret", services)

    async def copy() -> str:
        return await create_database(postgres.admin_url, f"t_{uuid.uuid4().hex[:12]}", template=template)

    async def verifier() -> str:
        conn = await asyncpg.connect(postgres.admin_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = 'berth_api'")
        finally:
            await conn.close()

    async def whoami(url: str) -> tuple[str, str]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetchval("SELECT current_user"), await conn.fetchval("SHOW search_path")
        finally:
            await conn.close()

    first = await provisioned(await copy(), "test-secret", services)
    assert await whoami(first["api"]) == ("berth_api", "api")
    before = await verifier()
    copied = await copy()
    second = await provisioned(copied, "test-secret", services)
    assert await verifier() == before  # a copy whose roles and schemas are as provisioning left them: not again ...
    assert await whoami(second["metrics"]) == ("berth_metrics", "metrics")
    assert second == await provision(copied, "test-secret", services)
    assert await verifier() != before  # ... (``provision`` sets each password again, with a new salt)

    rotated = await copy()
    await provision(rotated, "another-secret", services)  # a test rotates the roles' passwords
    with pytest.raises(asyncpg.InvalidPasswordError):
        await whoami(second["api"])
    again = await provisioned(await copy(), "test-secret", services)
    assert await whoami(again["api"]) == ("berth_api", "api")

    changed = await copy()
    admin = await asyncpg.connect(changed.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute('ALTER SCHEMA "metrics" OWNER TO postgres')  # a schema not as provisioning leaves it
    finally:
        await admin.close()
    await provisioned(changed, "test-secret", services)
    conn = await asyncpg.connect(changed.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await conn.fetchval("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'metrics'") == (
            "berth_metrics"
        )
    finally:
        await conn.close()
