"""Migrations in a child process: applied, idempotent, a failing one is raised, an absent database retried;
a schema already at the head of its scripts starts no child, and the child loads only what migrating needs."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from berth_cli.components import free_port
from berth_common import runtime
from berth_common.db import make_engine
from berth_common.db.migrate_process import MigrationError, run_migrations_isolated, schema_at_head, script_heads
from berth_common.db.provision import provision
from berth_scheduler.bootstrap import VERSIONS


async def test_migrations_run_in_a_child_process_and_are_idempotent(database):
    urls = await provision(database, "test-secret")
    await run_migrations_isolated(urls["scheduler"], "scheduler", VERSIONS)
    await run_migrations_isolated(urls["scheduler"], "scheduler", VERSIONS)
    conn = await asyncpg.connect(urls["scheduler"].replace("+asyncpg", ""))
    try:
        assert await conn.fetchval("SELECT count(*) FROM scheduler.alembic_version") == 1
        assert await conn.fetchval("SELECT to_regclass('scheduler.pings')::text") in ("pings", "scheduler.pings")
    finally:
        await conn.close()


async def test_a_failing_migration_is_raised_with_its_error(database, tmp_path: Path):
    urls = await provision(database, "test-secret")
    (tmp_path / "0001_bad.py").write_text(
        'from alembic import op\nrevision = "bad_0001"\ndown_revision = None\nbranch_labels = None\n'
        "depends_on = None\n\n\ndef upgrade():\n    op.execute('SELECT * FROM no_such_table')\n"
    )
    with pytest.raises(MigrationError, match="no_such_table"):
        await run_migrations_isolated(urls["scheduler"], "scheduler", tmp_path)


async def test_an_unreachable_database_is_a_connection_error(tmp_path: Path):
    from berth_cli.components import free_port

    url = f"postgresql+asyncpg://nobody:pw@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(ConnectionError):
        await run_migrations_isolated(url, "scheduler", VERSIONS, timeout_s=60)


SERVICES = ("api", "builder", "scheduler", "proxy_sync", "metrics", "notifier")


def test_the_heads_read_from_the_scripts_are_alembics(tmp_path: Path):
    from alembic.script import ScriptDirectory

    from berth_common.db.migrate import _config

    for name in SERVICES:
        versions = importlib.import_module(f"berth_{name}.bootstrap").VERSIONS
        alembic_heads = ScriptDirectory.from_config(_config(name, versions)).get_heads()
        assert script_heads(versions) == set(alembic_heads) != set(), name
    # a merge of two branches has one head; a script that does not say its revision plainly: ask alembic
    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision: str = "b"\ndown_revision = "a"\n')
    (tmp_path / "c.py").write_text('revision = "c"\ndown_revision = "a"\n')
    assert script_heads(tmp_path) == {"b", "c"}
    (tmp_path / "d.py").write_text('revision = "d"\ndown_revision = ("b", "c")\n')
    assert script_heads(tmp_path) == {"d"}
    (tmp_path / "e.py").write_text('revision = make_id()\ndown_revision = "d"\n')
    assert script_heads(tmp_path) is None


async def test_a_schema_is_at_head_only_with_every_script_applied(database, tmp_path: Path):
    urls = await provision(database, "test-secret")
    versions = tmp_path / "versions"
    shutil.copytree(VERSIONS, versions, ignore=shutil.ignore_patterns("__pycache__"))
    engine = make_engine(urls["scheduler"], "scheduler")
    try:
        assert not await schema_at_head(engine, "scheduler", versions)  # no version table yet
        await run_migrations_isolated(urls["scheduler"], "scheduler", versions)
        assert await schema_at_head(engine, "scheduler", versions)
        (versions / "9999_next.py").write_text(
            f'revision = "next_9999"\ndown_revision = "{next(iter(script_heads(VERSIONS) or []))}"\n'
            "def upgrade():\n    pass\n"
        )
        assert not await schema_at_head(engine, "scheduler", versions)
        await run_migrations_isolated(urls["scheduler"], "scheduler", versions)
        assert await schema_at_head(engine, "scheduler", versions)
    finally:
        await engine.dispose()


async def _start_and_stop(nats_url: str, database_url: str, *, migrate_in_subprocess: bool) -> None:
    """The notifier served until ready, then stopped."""
    from berth_notifier.bootstrap import spec
    from berth_notifier.settings import NotifierSettings

    port = free_port()
    settings = NotifierSettings(
        nats_url=nats_url, database_url=database_url, http_port=port, migrate_in_subprocess=migrate_in_subprocess
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.serve(spec(settings), stop))
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(600):
            assert not task.done(), task
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the notifier did not get ready")
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_a_service_restarted_at_head_starts_no_migration_child(nats_server, database, monkeypatch):
    urls = await provision(database, "test-secret")
    children = []
    real = runtime.run_migrations_isolated

    async def counted(*args, **kwargs):
        children.append(args[1])
        await real(*args, **kwargs)

    monkeypatch.setattr(runtime, "run_migrations_isolated", counted)

    await _start_and_stop(nats_server.url, urls["notifier"], migrate_in_subprocess=True)
    assert children == ["notifier"]  # a fresh schema: migrated in a child
    await _start_and_stop(nats_server.url, urls["notifier"], migrate_in_subprocess=True)
    assert children == ["notifier"]  # at head: no second child


async def test_a_service_migrating_in_its_own_process_runs_no_migration_at_head(nats_server, database, monkeypatch):
    """Where a service migrates in its own process (the tests', over a thousand service starts), a schema at
    head is not handed to alembic either (its scripts loaded, a lock taken: about 0.05-0.1 s a start)."""
    urls = await provision(database, "test-secret")
    runs = []
    real = runtime.run_migrations

    async def counted(engine, schema, *args, **kwargs):
        runs.append(schema)
        await real(engine, schema, *args, **kwargs)

    monkeypatch.setattr(runtime, "run_migrations", counted)

    await _start_and_stop(nats_server.url, urls["notifier"], migrate_in_subprocess=False)
    assert runs == ["notifier"]  # a fresh schema: migrated
    await _start_and_stop(nats_server.url, urls["notifier"], migrate_in_subprocess=False)
    assert runs == ["notifier"]  # at head: not again


def test_the_migration_child_loads_neither_the_bus_nor_the_catalogue():
    probe = (
        "import sys, berth_common.db.migrate_process\n"
        "print(sorted(m for m in ('berth_common.bus', 'berth_common.catalogue') if m in sys.modules))\n"
        "from berth_common.db import Unit, consume_once, make_engine, run_migrations\n"
        "print(Unit.__module__, consume_once.__module__, make_engine.__module__, run_migrations.__module__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded, homes = proc.stdout.strip().splitlines()[-2:]
    assert loaded == "[]"
    assert homes == "berth_common.db.unit berth_common.db.consume berth_common.db.engine berth_common.db.migrate"
