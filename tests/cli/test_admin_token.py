"""No way to lock yourself out for good: after the bootstrap admin's token is revoked through the api,
``berth up``'s report says the token it prints does not work, and ``berth admin token`` (on the host, with
the database's credentials) mints a new admin token into the token file, recorded in the audit log."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
from pathlib import Path

from berth_cli.layout import Paths
from berth_cli.platform import banner
from tests.api.conftest import bearer
from tests.api.module_api import api, api_settings, api_urls, base_api_settings, client  # noqa: F401

BERTH = str(Path(sys.executable).parent / "berth")


def _berth(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BERTH, *argv], capture_output=True, text=True, timeout=60)


async def test_a_revoked_admin_token_is_reported_and_replaced(api, client, api_urls, tmp_path):  # noqa: F811
    old = api.admin_token()
    me = (await client.get("/v1/me", headers=bearer(old))).json()
    r = await client.delete(f"/v1/tokens/{me['token']['id']}", headers=bearer(old))
    assert r.status_code in (200, 204), r.text
    assert (await client.get("/v1/me", headers=bearer(old))).status_code == 401

    paths = Paths(tmp_path / "data")
    paths.root.mkdir()
    paths.admin_token.write_text(old + "\n")
    report = await asyncio.to_thread(banner, paths, {"api": api.url})
    assert f"admin token: {old}" in report
    assert "the admin token does not work" in report and "berth admin token --data-dir" in report

    # Nobody of that name: nothing written.
    args = ("admin", "token", "--data-dir", str(paths.root), "--database-url", api_urls["api"])
    proc = await asyncio.to_thread(_berth, *args, "--email", "nobody@example.com")
    assert proc.returncode == 1 and "berth admin token: no enabled admin" in proc.stderr, proc.stderr
    assert paths.admin_token.read_text().strip() == old

    proc = await asyncio.to_thread(_berth, *args)
    assert proc.returncode == 0, proc.stderr
    new = paths.admin_token.read_text().strip()
    assert new != old and new in proc.stdout and "team default" in proc.stdout
    assert stat.S_IMODE(paths.admin_token.stat().st_mode) == 0o600

    me = (await client.get("/v1/me", headers=bearer(new))).json()
    assert me["role"] == "admin" and me["user"]["email"] == "admin@localhost"
    rows = (await client.get("/v1/audit", headers=bearer(new), params={"limit": 5})).json()
    minted = next(r for r in rows if r["action"] == "LOCAL berth admin token")
    assert minted["source"] == "local" and minted["target_id"] == me["token"]["id"] and minted["status"] == 201

    report = await asyncio.to_thread(banner, paths, {"api": api.url})
    assert f"admin token: {new}" in report and "does not work" not in report


def test_an_unreachable_api_is_said_so(tmp_path):
    paths = Paths(tmp_path)
    paths.admin_token.write_text("berth_0123456789ab_" + "A" * 43)
    report = banner(paths, {"api": "http://127.0.0.1:9"})
    assert "the admin token could not be checked (ConnectError)" in report and "mints" not in report
