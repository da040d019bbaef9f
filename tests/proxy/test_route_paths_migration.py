"""proxy_0008 on a real Postgres: a route keeps its path, a host is claimed under a path (longer than a host
name may be); the revision goes down (the claims under a path go first) and up again."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from berth_common.db import make_engine
from berth_common.db.migrate import run_migrations
from tests.api.test_jobs_migration import _downgrade

PROXY = Path(__file__).resolve().parents[2] / "services/proxy-sync/src/berth_proxy_sync/migrations/versions"
LONG = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"  # 253 characters


async def _rows(engine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        got = await conn.execute(sa.text("SELECT host, route_id FROM proxy.route_hosts ORDER BY host"))
        return [(r.host, r.route_id) for r in got]


async def test_the_revision_goes_up_and_down(empty_database: str) -> None:
    engine = make_engine(empty_database, "proxy")
    try:
        await run_migrations(engine, "proxy", PROXY)
        async with engine.begin() as conn:
            for rid, path in (("web", None), ("api", "/api/v2")):
                await conn.execute(
                    sa.text(
                        "INSERT INTO proxy.routes (route_id, hosts, upstreams, path_prefix) "
                        "VALUES (:rid, CAST(:hosts AS json), CAST('[]' AS json), :path)"
                    ),
                    {"rid": rid, "hosts": f'["{LONG}"]', "path": path},
                )
            await conn.execute(
                sa.text("INSERT INTO proxy.route_hosts (host, route_id) VALUES (:a, 'web'), (:b, 'api')"),
                {"a": LONG, "b": LONG + "/api/v2"},
            )
        assert await _rows(engine) == [(LONG, "web"), (LONG + "/api/v2", "api")]
        await _downgrade(engine, "proxy", PROXY, "proxy_0007")
        assert await _rows(engine) == [(LONG, "web")]
        await run_migrations(engine, "proxy", PROXY)
        async with engine.connect() as conn:
            paths = await conn.execute(sa.text("SELECT route_id, path_prefix FROM proxy.routes ORDER BY route_id"))
            assert [(r.route_id, r.path_prefix) for r in paths] == [("api", None), ("web", None)]
    finally:
        await engine.dispose()
