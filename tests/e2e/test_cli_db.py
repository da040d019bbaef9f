"""`berth db provision` (the compose one-shot) and the role URL `berth service run` derives, on real Postgres."""

from __future__ import annotations

import asyncio

import asyncpg
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


def test_db_provision_requires_its_variables():
    result = CliRunner().invoke(app, ["db", "provision"], env={"BERTH_DATABASE_URL": "", "BERTH_SECRET_KEY": "x"})
    assert result.exit_code == 2
    assert "BERTH_DATABASE_URL is not set" in result.output
