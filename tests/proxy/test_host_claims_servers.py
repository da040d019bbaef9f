"""Host locks across servers (``domain/batches.py``): the rule choosing each host lock's mode, by exact
comparison; and against a real Postgres, the same route id changed on two servers holds a host's lock at
once while a different route id's claim of that host waits, and its check still refuses it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from berth_common.db import make_engine, run_migrations
from berth_common.db.provision import provision, schema_for
from berth_proxy_sync.adapters import repo
from berth_proxy_sync.bootstrap import VERSIONS
from berth_proxy_sync.domain.batches import (
    claim_conflicts,
    command_locks,
    host_lock_modes,
    lost_shared_claims,
)
from berth_proxy_sync.domain.routes import Route

# --- the rule, pure ---------------------------------------------------------------------------------------


def test_a_host_the_route_id_owns_on_any_server_is_locked_shared_a_new_one_exclusively():
    held = {"a.x": {"srv1"}, "b.x": {"srv2"}}
    assert host_lock_modes(["b.x", "a.x", "c.x"], held, "srv1") == {
        "a.x": "shared",  # owned here, claimed again
        "b.x": "shared",  # owned on another server: this server joins
        "c.x": "exclusive",  # nobody has it for this route id: a new claim
    }
    assert host_lock_modes(["a.x"], {}, "local") == {"a.x": "exclusive"}
    assert host_lock_modes(["a.x", "a.x"], {"a.x": {"local"}}, "local") == {"a.x": "shared"}


def test_a_host_given_up_is_exclusive_only_when_it_is_the_route_ids_last_server():
    held = {"a.x": {"srv1", "srv2"}, "b.x": {"srv1"}, "c.x": {"srv2"}}
    # a removal on srv1: a.x stays the route id's (srv2), b.x is freed, c.x is not touched here
    assert host_lock_modes([], held, "srv1") == {"a.x": "shared", "b.x": "exclusive"}
    # an apply on srv1 that keeps a.x and drops b.x
    assert host_lock_modes(["a.x"], held, "srv1") == {"a.x": "shared", "b.x": "exclusive"}
    # a removal where the route id has nothing
    assert host_lock_modes([], {}, "srv1") == {}
    assert host_lock_modes([], held, "srv3") == {}


def test_command_locks_are_the_route_lock_then_each_host_with_its_mode():
    modes = host_lock_modes(["b.x", "a.x"], {"a.x": {"srv2"}}, "srv1")
    assert command_locks("web", modes, "srv1") == [
        ("berth-route:srv1/web", False),
        ("berth-host:a.x", True),
        ("berth-host:b.x", False),
    ]
    assert command_locks("web", {}, "local") == [("berth-route:web", False)]
    assert command_locks("web", {"a.x": "exclusive"}) == [("berth-route:web", False), ("berth-host:a.x", False)]


def test_a_shared_claim_of_a_host_nobody_owns_any_more_is_lost():
    modes = {"a.x": "shared", "b.x": "exclusive", "c.x": "shared"}
    claims = ["a.x", "b.x", "c.x"]
    # a.x still the route id's; b.x free (an exclusive claim takes it); c.x given up meanwhile
    assert lost_shared_claims("web", claims, modes, {"a.x": "web"}) == ["c.x"]
    assert lost_shared_claims("web", claims, modes, {"a.x": "web", "c.x": "web"}) == []
    # another route owning it is a conflict, not a lost claim
    assert lost_shared_claims("web", ["c.x"], modes, {"c.x": "api"}) == []
    assert claim_conflicts("web", ["c.x"], {"c.x": "api"}) == {"c.x": "api"}
    # a host given up shared (kept on another server) is no claim
    assert lost_shared_claims("web", [], {"a.x": "shared"}, {}) == []


# --- real Postgres ----------------------------------------------------------------------------------------


@pytest.fixture
async def engine(database) -> AsyncIterator[AsyncEngine]:
    urls = await provision(database, "test-secret", ("proxy-sync",))
    schema = schema_for("proxy-sync")
    eng = make_engine(urls["proxy-sync"], schema)
    await run_migrations(eng, schema, VERSIONS)
    yield eng
    await eng.dispose()


async def claim(session: AsyncSession, route_id: str, hosts: list[str], server_id: str) -> list[bool]:
    """What a batch does first for one command: choose the modes from what is stored, try the locks."""
    held = await repo.held_hosts(session, [route_id])
    modes = host_lock_modes(hosts, held.get(route_id, {}), server_id)
    locks = command_locks(route_id, modes, server_id)
    return await repo.try_locks(session, [k for k, _ in locks], [s for _, s in locks])


def route(route_id: str, host: str, upstream: str) -> Route:
    return Route.create(route_id, [host], [upstream], "web", 1)


async def test_the_same_route_on_two_servers_shares_the_host_lock_another_route_waits(engine) -> None:
    make = async_sessionmaker(engine)
    host = "shop.test"
    async with make() as s, s.begin():
        await repo.save(s, route("web", host, "http://web-1:80"), 1.0, "srv1")
        await repo.save(s, route("web", host, "http://web-2:80"), 1.0, "srv2")
        assert await repo.held_hosts(s, ["web", "api"]) == {"web": {host: {"srv1", "srv2"}}}

    async with make() as a, a.begin(), make() as b, b.begin():
        # the route id re-claims its host on both servers at once: both hold the host lock together
        assert await claim(a, "web", [host], "srv1") == [True, True]
        assert await claim(b, "web", [host], "srv2") == [True, True]
        async with make() as other, other.begin():  # another route id's claim of the host waits
            assert await claim(other, "api", [host], "srv3") == [True, False]
        async with make() as other, other.begin():  # ... on a server the route id is on, too
            assert await claim(other, "api", [host], "srv1") == [True, False]
        # each batch's check after its lock: the host is still its route id's, nothing is lost
        owners = await repo.host_owners(a, [host])
        assert owners == {host: "web"}
        assert claim_conflicts("web", [host], owners) == {}
        assert lost_shared_claims("web", [host], {host: "shared"}, owners) == []
        await repo.save(a, route("web", host, "http://web-1b:80"), 1.0, "srv1")
        await repo.save(b, route("web", host, "http://web-2b:80"), 1.0, "srv2")

    async with make() as s, s.begin():  # both committed; a different route id's claim now locks and fails
        assert await claim(s, "api", [host], "srv3") == [True, True]
        owners = await repo.host_owners(s, [host])
        assert claim_conflicts("api", [host], owners) == {host: "web"}
        assert [r.upstreams for r in await repo.active_routes(s, "srv1")] == [("http://web-1b:80",)]
        assert [r.upstreams for r in await repo.active_routes(s, "srv2")] == [("http://web-2b:80",)]


async def test_a_new_claim_and_the_removal_of_the_last_owner_are_exclusive(engine) -> None:
    make = async_sessionmaker(engine)
    host = "new.test"
    async with make() as a, a.begin(), make() as b, b.begin():
        # nobody owns the host: the same route id claiming it on two servers goes one at a time
        assert await claim(a, "web", [host], "srv1") == [True, True]
        assert await claim(b, "web", [host], "srv2") == [True, False]
        await repo.save(a, route("web", host, "http://web-1:80"), 1.0, "srv1")
    async with make() as b, b.begin():  # the second, in a later batch, now re-claims it shared
        assert await claim(b, "web", [host], "srv2") == [True, True]
        await repo.save(b, route("web", host, "http://web-2:80"), 1.0, "srv2")

    async with make() as a, a.begin(), make() as b, b.begin():
        # a removal on srv1 keeps the host the route id's (srv2): shared, beside a re-claim on srv2
        assert await claim(a, "web", [], "srv1") == [True, True]
        assert await claim(b, "web", [host], "srv2") == [True, True]
        await repo.mark_removed_many(a, "srv1", [("web", 2, route("web", host, "http://web-1:80"))])

    async with make() as a, a.begin():
        # the removal on the last server frees the host: exclusive, so another route's claim waits for it
        assert await claim(a, "web", [], "srv2") == [True, True]
        async with make() as other, other.begin():
            assert await claim(other, "api", [host], "srv3") == [True, False]
        await repo.mark_removed_many(a, "srv2", [("web", 2, route("web", host, "http://web-2:80"))])
    async with make() as other, other.begin():  # then finds the host free and claims it
        assert await claim(other, "api", [host], "srv3") == [True, True]
        assert claim_conflicts("api", [host], await repo.host_owners(other, [host])) == {}


async def test_a_shared_claim_whose_owner_left_meanwhile_is_lost_and_blocks_other_routes(engine) -> None:
    make = async_sessionmaker(engine)
    host = "moving.test"
    async with make() as s, s.begin():
        await repo.save(s, route("web", host, "http://web-1:80"), 1.0, "srv1")
    async with make() as b, b.begin():
        held = await repo.held_hosts(b, ["web"])
        modes = host_lock_modes([host], held.get("web", {}), "srv2")
        assert modes == {host: "shared"}
        async with make() as a, a.begin():  # the route id leaves srv1 (its last server) before b locks
            assert await claim(a, "web", [], "srv1") == [True, True]
            await repo.mark_removed_many(a, "srv1", [("web", 2, route("web", host, "http://web-1:80"))])
        locks = command_locks("web", modes, "srv2")
        assert await repo.try_locks(b, [k for k, _ in locks], [s for _, s in locks]) == [True, True]
        async with make() as other, other.begin():  # while b holds it shared, a new claim cannot lock
            assert await claim(other, "api", [host], "srv3") == [True, False]
        owners = await repo.host_owners(b, [host])
        assert owners == {}
        assert lost_shared_claims("web", [host], modes, owners) == [host]  # b waits for a later batch
    async with make() as b, b.begin():  # where it claims the host exclusively
        assert await claim(b, "web", [host], "srv2") == [True, True]
        assert host_lock_modes([host], (await repo.held_hosts(b, ["web"])).get("web", {}), "srv2") == {
            host: "exclusive"
        }


async def test_the_servers_keep_up_looks_after_are_those_with_an_active_route(engine) -> None:
    make = async_sessionmaker(engine)
    async with make() as s, s.begin():
        await repo.save(s, route("web", "a.test", "http://web-1:80"), 1.0, "srv2")
        await repo.save(s, route("api", "b.test", "http://api-1:80"), 1.0, "srv2")
        await repo.save(s, route("web", "a.test", "http://web-2:80"), 1.0, "srv1")
        await repo.save(s, route("old", "c.test", "http://old-1:80"), 1.0, "srv3")
        await repo.save(s, route("web", "a.test", "http://web-0:80"), 1.0)  # the local server's
        await repo.mark_removed_many(s, "srv3", [("old", 2, None)])  # its only route removed
    async with make() as s:
        assert await repo.servers_with_routes(s) == ["srv1", "srv2"]
