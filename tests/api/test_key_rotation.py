"""Key rotation (``berth secrets rotate-key``): every sealed value of the api schema re-sealed with a new key in
one transaction, the old key kept as a 0600 backup until success, and a running api that keeps opening and
sealing values throughout (it re-reads the key file; sealing waits for the rotation's lock)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from berth_api.adapters.sealed import reseal_all
from berth_api.adapters.secretbox import SecretBox, SecretUnavailableError
from berth_api.usecases.rotation import rotate
from berth_common.catalogue import ApplicationSpec
from berth_common.db import make_engine, make_sessionmaker
from tests.api.conftest import make_app
from tests.api.test_applications import GIT_APP, SECRETS

BERTH = str(Path(sys.executable).parent / "berth")


def _key(path: Path) -> bytes:
    return path.read_bytes().strip()


async def _opens_with(api_urls, key: bytes) -> int:
    """How many sealed values there are; raises unless every one opens with ``key`` alone (they are all
    re-sealed towards a throwaway key in a transaction that is rolled back: nothing changes)."""
    engine = make_engine(api_urls["api"], "api")
    try:
        async with make_sessionmaker(engine)() as s:
            async with s.begin():
                total = (await reseal_all(s, SecretBox([os.urandom(32), key]))).total
                await s.rollback()
    finally:
        await engine.dispose()
    return total


async def _count_sealed(api_urls) -> int:
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        n = 0
        for table in ("variables", "environment_variables", "group_variables"):
            n += await conn.fetchval(f"SELECT count(*) FROM api.{table} WHERE sealed IS NOT NULL")
        return n
    finally:
        await conn.close()


async def _setup(client, members) -> dict:
    app = await make_app(client, members.developer, copy.deepcopy(GIT_APP))
    await client.put(
        f"/v1/environments/{app['environment_id']}/variables",
        headers=members.developer,
        json={"variables": [{"name": "ENV_SECRET", "value": "env-rot-1", "secret": True}]},
    )
    g = await client.post(
        "/v1/env-groups",
        headers=members.developer,
        json={"name": "g", "variables": [{"name": "GROUP_SECRET", "value": "grp-rot-1", "secret": True}]},
    )
    await client.put(f"/v1/applications/{app['id']}/env-groups/{g.json()['id']}", headers=members.developer)
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    return app


def _env_of(cmd) -> dict[str, str]:
    spec = ApplicationSpec.model_validate(cmd.data["spec"])
    return {e.name: e.reveal() for e in spec.env}


async def test_the_command_rotates_while_the_api_keeps_working(api, client, members, scheduler, api_urls):
    key_path = api.settings.secrets_key_path
    old = _key(key_path)
    app = await _setup(client, members)
    assert await _count_sealed(api_urls) == 4  # DATABASE_URL, NPM_TOKEN, ENV_SECRET, GROUP_SECRET

    started = time.perf_counter()
    proc = await asyncio.to_thread(
        subprocess.run,
        [BERTH, "secrets", "rotate-key", "--data-dir", str(api.settings.data_dir), "--database-url", api_urls["api"]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BERTH_LOG_FORMAT": "json"},
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    assert "re-sealed 8 value(s)" in proc.stdout, proc.stdout  # 4 variables + 4 in the deployment snapshot
    for secret in (*SECRETS, "env-rot-1", "grp-rot-1"):
        assert secret not in proc.stdout + proc.stderr
    print(f"rotate-key command (process start included): {elapsed:.2f} s")

    new = _key(key_path)
    assert new != old and len(new) == 64
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    leftovers = sorted(p.name for p in key_path.parent.iterdir() if p.name.startswith(key_path.name + "."))
    assert leftovers == []  # no .next, and the backup removed after success
    assert await _opens_with(api_urls, new) == 8  # everything opens with the new key alone
    with pytest.raises(SecretUnavailableError):
        await _opens_with(api_urls, old)

    # The running api (it loaded only the old key) opens the re-sealed values and seals with the new key.
    r = await client.patch(
        f"/v1/applications/{app['id']}",
        headers=members.developer,
        json={
            "env": [{"name": "DATABASE_URL", "secret": True}, {"name": "AFTER", "value": "after-rot", "secret": True}]
        },
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (_, cmd) = await scheduler.wait_for("cmd.deployment.start", 2)
    env = _env_of(cmd)
    assert env["DATABASE_URL"] == "postgres://u:pg-s3cr3t-Pw@db/blog" and env["AFTER"] == "after-rot"
    assert env["ENV_SECRET"] == "env-rot-1" and env["GROUP_SECRET"] == "grp-rot-1"
    assert await _opens_with(api_urls, new) == 8 + 1 + 5  # AFTER, and the second snapshot
    # The first deployment's re-sealed snapshot still opens (its logs redact with it).
    first = (await client.get(f"/v1/applications/{app['id']}/deployments", headers=members.viewer)).json()[-1]
    r = await client.get(f"/v1/deployments/{first['id']}/logs", headers=members.viewer)
    assert r.status_code in (200, 503)


async def test_keep_backup_and_a_value_that_does_not_open_changes_nothing(api, client, members, api_urls):
    key_path = api.settings.secrets_key_path
    await _setup(client, members)
    engine = make_engine(api_urls["api"], "api")
    try:
        sm = make_sessionmaker(engine)
        old = _key(key_path)
        done = await rotate(sm, key_path, keep_backup=True)
        assert done.backup is not None and _key(done.backup) == old
        assert stat.S_IMODE(done.backup.stat().st_mode) == 0o600
        assert done.resealed.counts == {
            "variables": 2,
            "environment_variables": 1,
            "group_variables": 1,
            "deployments": 4,
        }
        again = await rotate(sm, key_path)  # a second rotation opens what the first sealed
        assert again.resealed.total == 8 and again.backup is None
        assert done.backup.exists()  # an earlier kept backup is left alone

        # Tamper with one sealed value: rotation refuses, names the row, and changes nothing.
        before = _key(key_path)
        conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
        try:
            await conn.execute(
                "UPDATE api.environment_variables SET sealed = overlay(sealed placing '\\xff'::bytea from 30 for 1)"
            )
        finally:
            await conn.close()
        files = sorted(p.name for p in key_path.parent.iterdir())
        with pytest.raises(SecretUnavailableError) as err:
            await rotate(sm, key_path)
        assert "environment_variables" in str(err.value) and "ENV_SECRET" in str(err.value)
        assert "env-rot-1" not in str(err.value)
        assert _key(key_path) == before and sorted(p.name for p in key_path.parent.iterdir()) == files
        with pytest.raises(SecretUnavailableError):
            await _opens_with(api_urls, before)  # the tampered one
    finally:
        await engine.dispose()


async def test_rotation_under_concurrent_writes_loses_nothing(api, client, members, scheduler, api_urls):
    """Secrets are set and deployments started while a large rotation runs: every request succeeds and
    afterwards every value is sealed with the new key."""
    key_path = api.settings.secrets_key_path
    app = await _setup(client, members)
    many = [{"name": f"S{i}", "value": f"v{i}", "secret": True} for i in range(400)]
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"env": many})
    assert r.status_code == 200, r.text
    for _ in range(10):
        assert (
            await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
        ).status_code == 202
    engine = make_engine(api_urls["api"], "api")
    results: list[int] = []

    async def writer(n: int) -> None:
        for j in range(5):
            body = {"env": [*many[:5], {"name": "W", "value": f"w-{n}-{j}", "secret": True}]}
            r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json=body)
            results.append(r.status_code)
            r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
            results.append(r.status_code)

    try:
        started = time.perf_counter()
        rotation = asyncio.create_task(rotate(make_sessionmaker(engine), key_path))
        await asyncio.gather(writer(1), writer(2))
        done = await rotation
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    print(f"rotation of {done.resealed.total} values with concurrent writers: {elapsed:.2f} s")
    assert done.resealed.total > 4000
    assert set(results) <= {200, 202}, results
    assert await _opens_with(api_urls, _key(key_path)) > 0  # raises if one was sealed with the old key
    # The last deployment carries the last value written.
    (*_, last) = await scheduler.wait_for("cmd.deployment.start", 21)
    assert _env_of(last)["W"] == "w-1-4" or _env_of(last)["W"] == "w-2-4"


def test_the_command_finds_the_database_of_a_data_dir(tmp_path, monkeypatch):
    """Without --database-url: the data dir's own Postgres, as the api's role (password from its secret)."""
    from berth_cli.secrets_cmd import api_database_url
    from berth_common.db.provision import role_password

    (tmp_path / "secret.key").write_text("platform-secret\n")
    (tmp_path / "postgres.password").write_text("pg-pw\n")
    monkeypatch.delenv("BERTH_SECRET_KEY", raising=False)
    monkeypatch.setenv("BERTH_PG_PORT", "6123")
    url = api_database_url(tmp_path, None)
    assert url == f"postgresql+asyncpg://berth_api:{role_password('platform-secret', 'api')}@127.0.0.1:6123/berth"
    # A URL without a user gets the api's role; one with a user is taken as it is.
    assert api_database_url(tmp_path, "postgresql://db.internal:5432/berth").startswith(
        "postgresql+asyncpg://berth_api:"
    )
    assert api_database_url(tmp_path, "postgresql://me:pw@db/berth") == "postgresql://me:pw@db/berth"


async def test_rotation_reseals_snapshots_stored_in_the_former_format(api, client, members, api_urls):
    """Deployment snapshots sealed by the former api code (``sealed:v1:`` + standard base64) still open, and
    a rotation re-seals them in the current format (berth_common.sealing)."""
    from berth_api.domain.applications import reseal_spec, snapshot_aad
    from berth_common import sealing
    from tests.common.test_sealing_legacy import api_seal_text

    key_path = api.settings.secrets_key_path
    await _setup(client, members)
    material = _key(key_path)
    box = SecretBox([material])
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    engine = make_engine(api_urls["api"], "api")
    try:

        def former(text: str, aad: str) -> str:
            return api_seal_text(material, box.open_text(text, aad), aad)

        async def snapshot_texts() -> list[str]:
            texts: list[str] = []

            def collect(text: str, aad: str) -> str:
                texts.append(text)
                return text

            for r in await conn.fetch("SELECT id, spec FROM api.deployments"):
                reseal_spec(json.loads(r["spec"]), collect, snapshot_aad(r["id"]))
            return texts

        for r in await conn.fetch("SELECT id, spec FROM api.deployments"):
            spec = reseal_spec(json.loads(r["spec"]), former, snapshot_aad(r["id"]))
            await conn.execute("UPDATE api.deployments SET spec = $1::json WHERE id = $2", json.dumps(spec), r["id"])
        texts = await snapshot_texts()
        assert len(texts) == 4 and not any(sealing.is_sealed(t) for t in texts)
        assert all(t.startswith("sealed:v1:") for t in texts)
        assert await _opens_with(api_urls, material) == 8  # the former texts open with the key

        done = await rotate(make_sessionmaker(engine), key_path)
        assert done.resealed.counts["deployments"] == 4
        texts = await snapshot_texts()
        assert len(texts) == 4 and all(sealing.is_sealed(t) for t in texts)
        assert await _opens_with(api_urls, _key(key_path)) == 8
    finally:
        await conn.close()
        await engine.dispose()
