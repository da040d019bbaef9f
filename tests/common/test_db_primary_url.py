"""Any Postgres by URL: a URL listing a primary and its standby (libpq's multi-host form) reaches the one
that takes writes, whatever the order, so a service follows a primary switch without a new setting."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from berth_cli import components
from berth_common.db import make_engine


def hosts_url(admin_url: str, hosts: list[str]) -> str:
    """``admin_url`` with its host replaced by ``hosts`` (``?host=a:1&host=b:2``) and read-write required."""
    u = make_url(admin_url)
    query = {"host": hosts, "target_session_attrs": "read-write"}
    return u.set(host=None, port=None, query=query).render_as_string(hide_password=False)


async def test_a_url_listing_several_hosts_reaches_the_one_that_takes_writes(database):
    u = make_url(database)
    dead = f"127.0.0.1:{components.free_port()}"  # a primary that went away: nothing listens
    url = hosts_url(database, [dead, f"{u.host}:{u.port}"])
    engine = make_engine(url, "public")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS t_primary (x int)"))
            await conn.execute(sa.text("INSERT INTO t_primary VALUES (1)"))
            assert (await conn.execute(sa.text("SELECT pg_is_in_recovery()"))).scalar_one() is False
    finally:
        await engine.dispose()
