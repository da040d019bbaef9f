"""The berth command besides up/down/status: db provision (compose one-shot), bus spec, images base."""

from __future__ import annotations

import asyncio
import json
import subprocess

import asyncpg
import pytest
from typer.testing import CliRunner

from berth_cli.main import app
from berth_cli.provisioning import role_url
from berth_common.db.provision import role_password


def test_db_provision_creates_roles_and_prints_nothing_secret(database):
    secret = "compose-secret-key"
    env = {"BERTH_DATABASE_URL": database, "BERTH_SECRET_KEY": secret}
    result = CliRunner().invoke(app, ["db", "provision"], env=env)
    assert result.exit_code == 0, result.output
    assert "berth_scheduler" in result.output
    admin_password = database.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    for text in (secret, admin_password, role_password(secret, "scheduler")):
        assert text not in result.output
    # twice is fine (idempotent)
    assert CliRunner().invoke(app, ["db", "provision"], env=env).exit_code == 0

    # what `berth service run` does with a URL naming only the server: the service's own role
    server_only = "postgresql+asyncpg://" + database.split("@", 1)[1]
    url = role_url(server_only, secret, "scheduler")

    async def whoami() -> tuple[str, str]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetchval("SELECT current_user"), await conn.fetchval("SHOW search_path")
        finally:
            await conn.close()

    assert asyncio.run(whoami()) == ("berth_scheduler", "scheduler")


async def test_the_supervisors_provisioning_child_migrates_every_service_with_its_own_role(database):
    """What `berth up` runs before it starts the services: the roles, and each service's schema migrated to the
    head of its scripts by that service's role, so that no service starts a migration child of its own."""
    import os
    import sys

    from berth_cli.layout import PROVISION_MIGRATES
    from berth_cli.provisioning import versions_dir
    from berth_common.db import make_engine
    from berth_common.db.migrate_process import schema_at_head
    from berth_common.db.provision import SERVICES, role_for, schema_for

    env = {**os.environ, "BERTH_DATABASE_URL": database, "BERTH_SECRET_KEY": "up-secret"}

    def provision(**extra: str) -> dict[str, str]:
        argv = [sys.executable, "-m", "berth_cli.provisioning"]
        proc = subprocess.run(argv, env={**env, **extra}, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        return json.loads(proc.stdout)

    async def at_head(urls: dict[str, str]) -> dict[str, bool]:
        found = {}
        for service in SERVICES:
            versions = versions_dir(service)
            assert versions is not None and any(versions.glob("*.py")), service
            engine = make_engine(urls[service], schema_for(service))
            try:
                found[service] = await schema_at_head(engine, schema_for(service), versions)
            finally:
                await engine.dispose()
        return found

    urls = provision()  # `berth db provision`'s way: roles and schemas only
    assert await at_head(urls) == dict.fromkeys(SERVICES, False)
    assert provision(**{PROVISION_MIGRATES: "1"}) == urls
    assert await at_head(urls) == dict.fromkeys(SERVICES, True)
    conn = await asyncpg.connect(database.replace("+asyncpg", ""))
    try:
        for service in SERVICES:
            owner = await conn.fetchval(
                "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'alembic_version'",
                schema_for(service),
            )
            assert owner == role_for(service), service
    finally:
        await conn.close()


def test_db_provision_requires_its_variables():
    result = CliRunner().invoke(app, ["db", "provision"], env={"BERTH_DATABASE_URL": "", "BERTH_SECRET_KEY": "x"})
    assert result.exit_code == 2
    assert "BERTH_DATABASE_URL is not set" in result.output


def test_bus_spec_prints_the_asyncapi_document():
    result = CliRunner().invoke(app, ["bus", "spec"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["asyncapi"] == "3.0.0"
    assert any(name.startswith("cmd.") for name in doc["channels"])
    assert any(name.startswith("evt.") for name in doc["channels"])


def test_images_base_refuses_an_unknown_image():
    result = CliRunner().invoke(app, ["images", "base", "nosuch"])
    assert result.exit_code == 2
    assert "unknown base image 'nosuch'" in result.output


@pytest.mark.docker
def test_images_base_makes_or_finds_busybox():
    result = CliRunner().invoke(app, ["images", "base", "busybox"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("berth/busybox:1: ")
    assert subprocess.run(["docker", "image", "inspect", "berth/busybox:1"], capture_output=True).returncode == 0
