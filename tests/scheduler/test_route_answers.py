"""proxy-sync's answers to route commands (``store.settle_op``) recorded at the same time (several scheduler
instances share the answers' durable consumers): two answers of one route on one server whose generations
cross leave the route as its newest confirmed generation says (none lost, none reordered); answers of the
route on other servers do not wait for each other."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from berth_common.db import make_engine, make_sessionmaker
from berth_scheduler.adapters import store
from berth_scheduler.adapters.tables import route_ops, routes
from berth_scheduler.domain.routing import RouteOp
from tests.support.bus_helpers import prepare_schema

SCHEMA = "sched_route_answers"


@pytest.fixture
async def sessionmaker(database):
    await prepare_schema(database, SCHEMA, routes, route_ops)
    engine = make_engine(database, SCHEMA, pool_size=4)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _sent(sessionmaker, rid: str, server: str, upstreams: list[str]) -> int:
    """A command recorded as the rollout records it: the route's next generation, and its op."""
    async with sessionmaker() as s, s.begin():
        gen = await store.next_generation(s, rid, "app-1", server)
        op = RouteOp("apply", rid, (f"{rid}.localhost",), tuple(upstreams), server)
        await store.add_op(s, uuid.uuid4().hex, 0, op, gen)
    return gen


async def _route(sessionmaker, rid: str, server: str) -> list[str]:
    async with sessionmaker() as s:
        row = (await s.execute(sa.select(routes).where(routes.c.route_id == rid, routes.c.server_id == server))).one()
        return list(row.upstreams)


async def test_crossing_answers_of_one_route_keep_the_newest_generation(sessionmaker):
    rid, server = "web-1", "srv-a"
    old = await _sent(sessionmaker, rid, server, ["http://old:8080"])
    new = await _sent(sessionmaker, rid, server, ["http://new:8080"])
    async with sessionmaker() as newer:
        await newer.begin()
        await store.settle_op(newer, rid, new, True, None, server)  # the newer answer, not committed yet

        async def older() -> None:
            async with sessionmaker() as s, s.begin():
                await store.settle_op(s, rid, old, True, None, server)

        late = asyncio.create_task(older())  # the older answer arrives meanwhile, in a transaction of its own
        await asyncio.sleep(0.5)
        assert not late.done()  # it waits for the newer one: the same route on the same server
        await newer.commit()
    await asyncio.wait_for(late, 10)
    assert await _route(sessionmaker, rid, server) == ["http://new:8080"]


async def test_answers_of_one_route_on_different_servers_do_not_wait_for_each_other(sessionmaker):
    rid = "web-2"
    gens = {server: await _sent(sessionmaker, rid, server, [f"http://{server}:8080"]) for server in ("a", "b")}
    async with sessionmaker() as first:
        await first.begin()
        await store.settle_op(first, rid, gens["a"], True, None, "a")  # server a's answer, not committed yet
        async with sessionmaker() as s, s.begin():  # server b's is settled meanwhile
            await asyncio.wait_for(store.settle_op(s, rid, gens["b"], True, None, "b"), 5)
        await first.commit()
    assert await _route(sessionmaker, rid, "a") == ["http://a:8080"]
    assert await _route(sessionmaker, rid, "b") == ["http://b:8080"]
