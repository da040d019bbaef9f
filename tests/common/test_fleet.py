"""The server directory kept from ``evt.server.changed``: the latest revision wins whatever order events
arrive in, a removed server stays removed, and a connection target opens the sealed key only for a server
that may be connected to."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from berth_common import fleet, sealing, ssh_keys
from berth_common.catalogue import ServerChanged, sealed_key_aad
from berth_common.db import make_engine
from tests.support.bus_helpers import prepare_schema

metadata = sa.MetaData()
servers = fleet.servers_table(metadata)
KEY, _ = ssh_keys.generate_key_pair()


def changed(revision: int, state: str = "ready", **over: object) -> ServerChanged:
    values: dict[str, object] = {
        "server_id": "srv1",
        "team_id": "team1",
        "name": "web-1",
        "host": "10.0.0.5",
        "port": 22,
        "user": "deploy",
        "private_key": sealing.seal(KEY, sealed_key_aad("srv1")),
        "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPinned",
        "state": state,
        "revision": revision,
    }
    return ServerChanged.model_validate({**values, **over})


async def test_latest_revision_wins_and_removal_is_final(database: str) -> None:
    await prepare_schema(database, "fleet_t", servers)
    engine = make_engine(database, "fleet_t")
    try:
        async with engine.begin() as conn:
            from sqlalchemy.ext.asyncio import AsyncSession

            s = AsyncSession(bind=conn)
            assert await fleet.record_change(s, servers, changed(2, host="10.0.0.6"))
            assert not await fleet.record_change(s, servers, changed(1))  # late: ignored
            assert not await fleet.record_change(s, servers, changed(2))  # redelivered: ignored
            rec = await fleet.server_of(s, servers, "srv1")
            assert rec is not None and (rec.host, rec.revision, rec.usable) == ("10.0.0.6", 2, True)
            target = fleet.target_of(rec)
            assert (target.host, target.user, target.private_key) == ("10.0.0.6", "deploy", KEY)
            assert KEY not in repr(rec) and "BEGIN" not in repr(target)
            assert [r.id for r in await fleet.servers_in(s, servers)] == ["srv1"]

            assert await fleet.record_change(s, servers, changed(3, state="removed"))
            assert not await fleet.record_change(s, servers, changed(2))  # cannot come back
            gone = await fleet.server_of(s, servers, "srv1")
            assert gone is not None and gone.state == "removed" and gone.private_key is None
            assert await fleet.servers_in(s, servers) == []
            with pytest.raises(fleet.ServerNotUsable, match="has been removed"):
                fleet.target_of(gone)
            assert await fleet.server_of(s, servers, "other") is None
            await s.close()
    finally:
        await engine.dispose()


def test_servers_not_validated_or_without_pinned_key_are_not_connected_to() -> None:
    rec = fleet.ServerRecord("s", "t", "web", "h", 22, "root", "sealed", None, "ready", 1)
    with pytest.raises(fleet.ServerNotUsable, match="no pinned host key"):
        fleet.target_of(rec)
    rec = fleet.ServerRecord("s", "t", "web", "h", 22, "root", "sealed", "ssh-ed25519 AAAA", "invalid", 1)
    with pytest.raises(fleet.ServerNotUsable, match="is invalid"):
        fleet.target_of(rec)
