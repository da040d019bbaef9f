"""One collection against the real engine and /proc, stored in a real Postgres; and an engine that is away."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from berth_common.docker import DockerEngines, local_engine
from berth_metrics.adapters.docker import DockerSource
from berth_metrics.adapters.host import HostReader
from berth_metrics.adapters.store import SampleStore
from berth_metrics.domain.readings import ContainerReading, Snapshot
from berth_metrics.settings import REAL_FILESYSTEMS
from berth_metrics.usecases.collect import Collector
from tests.metrics.service import containers, run_busybox


def collector(sessionmaker, url: str | None = None) -> Collector:
    return Collector(
        source=DockerSource(DockerEngines(local_engine(url, "v1.41")), 5.0),
        host=HostReader(Path("/proc"), REAL_FILESYSTEMS),
        store=SampleStore(sessionmaker),
        server="vm-t",
        concurrency=4,
    )


async def rows_by_kind(sessionmaker) -> dict[str, int]:
    async with sessionmaker() as s:
        q = sa.text("SELECT r.kind, count(*) FROM samples s JOIN series r ON r.id = s.series_id GROUP BY r.kind")
        return dict((await s.execute(q)).all())


@pytest.mark.docker
async def test_two_collections_read_containers_and_the_server(sessionmaker, unique):
    c = collector(sessionmaker)
    async with containers() as made:
        cid = run_busybox(labels={"berth.app": f"c-{unique}", "berth.service": "web"}, command=["sleep", "600"])
        made.append(cid)
        first = await c.collect_once()
        second = await c.collect_once()
        await c.source.close()
    assert first.containers[cid].cpu_pct is None  # no earlier reading to take a delta against
    mine = second.containers[cid]
    assert mine.cpu_pct is not None and 0.0 <= mine.cpu_pct < 50.0
    assert mine.labels == {"app": f"c-{unique}", "service": "web"} and mine.health is None and mine.restarts == 0
    assert mine.mem_used and mine.mem_limit and mine.mem_limit > mine.mem_used
    assert second.server is not None and second.server.cpu_pct is not None and second.server.disks
    kinds = await rows_by_kind(sessionmaker)
    assert kinds["server"] == 2 and kinds["mount"] == 2 * len(second.server.disks) and kinds["container"] >= 2


async def test_an_engine_that_does_not_answer_keeps_the_last_container_readings(sessionmaker, tmp_path):
    c = collector(sessionmaker, f"unix://{tmp_path / 'no-engine.sock'}")
    kept = ContainerReading("a" * 64, "web-1", "img", {}, None, 10.0, 1, 2, 0, 0, 0, 0, 0, None)  # type: ignore[arg-type]
    c.snapshot = Snapshot(containers={kept.container_id: kept})
    snap = await c.collect_once()
    await c.source.close()
    assert snap.containers == {kept.container_id: kept} and snap.server is not None
    assert (await rows_by_kind(sessionmaker)).get("container") is None  # stale readings are not stored again
    assert (await rows_by_kind(sessionmaker))["server"] == 1


async def test_migration_and_table_definitions_agree(sessionmaker):
    from berth_metrics.adapters.tables import metadata

    async with sessionmaker() as s:
        for table in metadata.sorted_tables:
            q = sa.text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'metrics' AND table_name = :t"
            )
            in_db = set((await s.execute(q, {"t": table.name})).scalars())
            assert in_db == {c.name for c in table.columns}, table.name


class GoneAfterListing(DockerSource):
    """The real engine answers the listing, then the engine is gone (a dead socket) for the readings."""

    def __init__(self, dead_url: str) -> None:
        super().__init__(DockerEngines(local_engine(dead_url, "v1.41")), 5.0)
        self.live = DockerSource(DockerEngines(local_engine(None, "v1.41")), 5.0)

    async def running(self):  # type: ignore[no-untyped-def]
        return await self.live.running()


@pytest.mark.docker
async def test_an_engine_gone_after_the_listing_keeps_the_last_readings(sessionmaker, unique, tmp_path):
    c = collector(sessionmaker)
    async with containers() as made:
        cid = run_busybox(labels={"berth.team": f"t-{unique}"}, command=["sleep", "600"])
        made.append(cid)
        first = await c.collect_once()
        assert f"t-{unique}" in c.teams()
        await c.source.close()
        source = GoneAfterListing(f"unix://{tmp_path / 'gone.sock'}")
        c.source = source
        snap = await c.collect_once()
        await source.live.close()
        await source.close()
    assert not c.engine_answered and c.engine_error
    assert snap.containers == first.containers and f"t-{unique}" in c.teams()  # not "no containers any more"
