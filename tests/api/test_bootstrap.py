"""First start: one bootstrap admin, a `default` team and a token file (0600, atomic); never twice."""

from __future__ import annotations

import asyncio
import os
import stat

import asyncpg
import httpx

from berth_api.domain import tokens
from berth_api.usecases import identity
from berth_common.db import make_engine, make_sessionmaker
from berth_common.keyfile import write_private_file
from tests.api.conftest import bearer, start_api


async def _count(db_url: str, table: str) -> int:
    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM api.{table}"))
    finally:
        await conn.close()


async def test_first_start_writes_a_private_token_that_works(api_settings, api_urls, capfd):
    api = await start_api(api_settings)  # started here, so its logs are captured by this test
    try:
        await _check_first_start(api, api_urls, capfd)
    finally:
        await api.shutdown()


async def _check_first_start(api, api_urls, capfd):
    path = api.token_path
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, oct(mode)
    token = api.admin_token()
    assert tokens.parse(token) is not None
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []

    async with httpx.AsyncClient(base_url=api.url) as client:
        r = await client.get("/v1/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["role"] == "admin"
    assert me["team"]["name"] == "default"
    assert me["user"]["email"] == api.settings.admin_email
    assert me["token"]["name"] == "bootstrap"

    # Only the hash is stored, and the token never reaches the logs.
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        stored = await conn.fetch("SELECT prefix, hash FROM api.api_tokens")
    finally:
        await conn.close()
    _, prefix, secret = token.split("_", 2)
    assert [(r["prefix"], r["hash"]) for r in stored] == [(prefix, tokens.hash_secret(secret))]
    out, err = capfd.readouterr()
    assert secret not in out + err
    assert str(path) in out + err  # where it was written is logged


async def test_second_start_keeps_the_admin_and_the_file(api_settings, api_urls):
    first = await start_api(api_settings)
    token = first.admin_token()
    before = first.token_path.stat()
    await first.shutdown()

    second = await start_api(api_settings)
    try:
        after = second.token_path.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert second.admin_token() == token
        assert await _count(api_urls["api"], "users") == 1
        assert await _count(api_urls["api"], "api_tokens") == 1
        assert await _count(api_urls["api"], "teams") == 1
    finally:
        await second.shutdown()


async def test_concurrent_first_starts_create_one_admin(api_urls, tmp_path):
    """Five processes' worth of bootstraps racing on one database: one admin, one token, one file."""
    engines = [make_engine(api_urls["api"], "api") for _ in range(5)]
    try:
        # The schema must exist first: a real start migrates before bootstrapping.
        from berth_api.bootstrap import VERSIONS
        from berth_common.db import run_migrations

        await run_migrations(engines[0], "api", VERSIONS)
        path = tmp_path / "admin.token"
        results = await asyncio.gather(
            *(identity.bootstrap_admin(make_sessionmaker(e), "admin@localhost", path) for e in engines)
        )
    finally:
        for e in engines:
            await e.dispose()
    assert sorted(results) == [False, False, False, False, True]
    assert await _count(api_urls["api"], "users") == 1
    assert await _count(api_urls["api"], "memberships") == 1
    assert await _count(api_urls["api"], "api_tokens") == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_private_file_is_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        target = tmp_path / "deep" / "admin.token"
        write_private_file(target, "first\n")
        write_private_file(target, "second\n")  # replaces atomically
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["admin.token"]


def test_private_file_refuses_a_symlinked_temp_name(tmp_path, monkeypatch):
    """The temp file is created O_EXCL|O_NOFOLLOW: a planted file or link at its name is never written through."""
    import secrets as secrets_mod

    monkeypatch.setattr(secrets_mod, "token_hex", lambda n: "fixed")
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / ".admin.token.fixed.tmp").symlink_to(victim)
    try:
        write_private_file(tmp_path / "admin.token", "secret")
    except FileExistsError:
        pass
    else:
        raise AssertionError("wrote through a planted symlink")
    assert victim.read_text() == "untouched"
    assert not (tmp_path / "admin.token").exists()
