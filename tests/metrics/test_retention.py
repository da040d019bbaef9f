"""Retention against a real Postgres: old samples are rolled up (1 minute, 1 hour, weighted by sample
count), deleted once rolled and past their retention, and the size stays bounded by the caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from berth_metrics.adapters.retention import RetentionPolicy, run_retention
from berth_metrics.adapters.store import EPOCH, SampleRow, SampleStore, SeriesRef
from berth_metrics.domain.series import Retention
from berth_metrics.usecases.queries import Deps, query

POLICY = RetentionPolicy(
    raw=timedelta(hours=24),
    minute=timedelta(days=7),
    hour=timedelta(days=90),
    max_raw_rows_per_series=1000,
    max_series=100,
)
WEB = SeriesRef("f" * 64, "container", "web-1", "vm1", (("app", "web"), ("team", "t1")))


def hour_start(t: datetime) -> datetime:
    return EPOCH + timedelta(hours=(t - EPOCH) // timedelta(hours=1))


def row(ts: datetime, cpu: float, mem: int, rx: int) -> SampleRow:
    return SampleRow(WEB, ts, {"cpu_pct": cpu, "mem_used": mem, "mem_limit": 1000, "net_rx": rx, "restarts": 0})


async def counts(sm) -> dict[str, int]:
    async with sm() as s:
        return {
            t: (await s.execute(sa.text(f"SELECT count(*) FROM {t}"))).scalar_one()
            for t in ("samples", "rollup_1m", "rollup_1h")
        }


async def rollup_row(sm, table: str, ts: datetime) -> dict:
    async with sm() as s:
        r = await s.execute(
            sa.text(f"SELECT n, cpu_pct, cpu_pct_max, mem_used, mem_used_max, net_rx FROM {table} WHERE ts = :ts"),
            {"ts": ts},
        )
        return dict(r.mappings().one())


async def test_old_samples_are_rolled_up_and_deleted(sessionmaker):
    # half past an hour: the hour of the recent samples has ended longer ago than the roll-up's lag (in the
    # first seconds of an hour it has not, and it is not rolled up yet)
    now = hour_start(datetime.now(UTC)) - timedelta(minutes=30)
    store = SampleStore(sessionmaker)
    ancient = hour_start(now - timedelta(days=100))
    ten_days = hour_start(now - timedelta(days=10))  # two minutes of one hour: 4 samples and 1 sample
    two_days = hour_start(now - timedelta(days=2)) + timedelta(minutes=5)  # one minute: 3 samples
    recent = hour_start(now) - timedelta(minutes=30)  # an hour before now, six samples within one minute
    rows = [row(ancient + timedelta(seconds=10 * i), 99, 1, 1) for i in range(3)]
    rows += [row(ten_days + timedelta(seconds=10 * i), 10, 100, 5 + i) for i in range(4)]
    rows += [row(ten_days + timedelta(minutes=1), 50, 600, 100)]
    rows += [
        row(two_days + timedelta(seconds=10 * i), cpu, mem, 1000 + i)
        for i, (cpu, mem) in enumerate([(10, 100), (20, 200), (60, 300)])
    ]
    rows += [row(recent + timedelta(seconds=10 * i), 5, 50, 7) for i in range(6)]
    assert await store.write(rows) == 17

    report = await run_retention(sessionmaker, POLICY, now)
    assert report.deleted_raw == 11 and report.deleted_1h == 1
    assert await counts(sessionmaker) == {
        "samples": 6,  # only the last 24 h stay raw
        "rollup_1m": 2,  # the minutes of 2 days ago and of the recent samples; 10 days ago is past 7 days
        "rollup_1h": 3,  # 10 days, 2 days, recent; 100 days ago is past 90 days
    }

    assert await rollup_row(sessionmaker, "rollup_1m", two_days) == {
        "n": 3, "cpu_pct": 30.0, "cpu_pct_max": 60.0, "mem_used": 200, "mem_used_max": 300, "net_rx": 1002,
    }  # fmt: skip
    # the hour of 10 days ago, from two minute rollups: weighted by their sample counts (not 30 = (10+50)/2)
    assert await rollup_row(sessionmaker, "rollup_1h", ten_days) == {
        "n": 5, "cpu_pct": 18.0, "cpu_pct_max": 50.0, "mem_used": 200, "mem_used_max": 600, "net_rx": 100,
    }  # fmt: skip
    async with sessionmaker() as s:
        old_minutes = (
            await s.execute(sa.text("SELECT count(*) FROM rollup_1m WHERE ts < :t"), {"t": now - timedelta(days=7)})
        ).scalar_one()
        assert old_minutes == 0

    # a second run changes nothing
    before = await counts(sessionmaker)
    again = await run_retention(sessionmaker, POLICY, now)
    assert (again.deleted_raw, again.deleted_1m, again.deleted_1h) == (0, 0, 0)
    assert await counts(sessionmaker) == before

    # a backfilled sample (older than what was rolled) is rolled on the next run, then expires
    three_days = hour_start(now - timedelta(days=3))
    await store.write([row(three_days, 42, 420, 4200)])
    await run_retention(sessionmaker, POLICY, now)
    assert (await rollup_row(sessionmaker, "rollup_1m", three_days))["cpu_pct"] == 42.0
    assert (await rollup_row(sessionmaker, "rollup_1h", three_days))["cpu_pct"] == 42.0
    assert (await counts(sessionmaker))["samples"] == 6

    # the query reads the resolution that still holds the range
    deps = Deps(sessionmaker, None, Retention(POLICY.raw, POLICY.minute, POLICY.hour), 10.0)  # type: ignore[arg-type]
    reply = await query(deps, {"target_kind": "app", "target_id": "web", "start": (two_days - timedelta(hours=1)).isoformat(),
                               "end": (two_days + timedelta(hours=1)).isoformat(), "step_s": 60, "metrics": ["cpu_pct", "mem_pct"]})  # fmt: skip
    assert reply.problem is None and reply.resolution == "1m"
    cpu = next(s for s in reply.series if s.metric == "cpu_pct")
    assert [(t, v) for t, v in cpu.points] == [(two_days, 30.0)]
    mem = next(s for s in reply.series if s.metric == "mem_pct")
    assert mem.points[0][1] == 20.0 and mem.unit == "percent" and mem.labels == {"app": "web", "team": "t1"}
    reply = await query(
        deps,
        {
            "target_kind": "container",
            "target_id": "web-1",
            "start": (now - timedelta(days=30)).isoformat(),
            "step_s": 86400,
        },
    )
    assert reply.resolution == "1h" and {s.metric for s in reply.series} >= {"cpu_pct", "net_rx", "health"}


async def test_caps_bound_rows_per_series_and_series(sessionmaker):
    now = datetime.now(UTC)
    store = SampleStore(sessionmaker)
    await store.write([row(now - timedelta(seconds=100 - i), i, i, i) for i in range(25)])
    mounts = [SeriesRef(f"vm1:/m{i}", "mount", f"/m{i}", "vm1") for i in range(12)]
    await store.write([SampleRow(m, now, {"disk_used": 1, "disk_total": 2}) for m in mounts])
    async with sessionmaker() as s, s.begin():
        await s.execute(
            sa.text(
                "UPDATE series SET last_seen_at = now() - make_interval(mins => 100 - cast(substr(key, 7) AS int)) WHERE kind = 'mount'"
            )
        )
    policy = RetentionPolicy(POLICY.raw, POLICY.minute, POLICY.hour, max_raw_rows_per_series=10, max_series=11)
    report = await run_retention(sessionmaker, policy, now)
    assert report.capped_raw == 15 and report.deleted_series == 2
    async with sessionmaker() as s:
        cpus = (
            (
                await s.execute(
                    sa.text(
                        "SELECT cpu_pct FROM samples s JOIN series r ON r.id = s.series_id WHERE r.key = :k ORDER BY ts"
                    ),
                    {"k": WEB.key},
                )
            )
            .scalars()
            .all()
        )
        assert cpus == [float(i) for i in range(15, 25)]  # the newest stay
        left = (await s.execute(sa.text("SELECT key FROM series WHERE kind = 'mount' ORDER BY key"))).scalars().all()
        assert "vm1:/m0" not in left and "vm1:/m1" not in left and len(left) == 10
    # the store registers a series again after retention deleted it
    await store.write([SampleRow(mounts[0], now + timedelta(seconds=1), {"disk_used": 1, "disk_total": 2})])


async def test_a_coarse_step_over_recent_hours_reads_what_is_not_rolled_up_yet(sessionmaker):
    """step=1h over the last hours: complete rolled hours from the hour rollup, the rest of the range from
    the minute rollup and raw samples (weighted by sample count), whatever retention has reached."""
    start = hour_start(datetime.now(UTC)) - timedelta(hours=3)
    store = SampleStore(sessionmaker)

    def cpu_at(minute: int) -> float:  # hour 0: 10, hour 1: 50, hour 2: 20 then 40 from :30, hour 3: 70
        return (10.0, 50.0, 20.0 if minute % 60 < 30 else 40.0, 70.0)[minute // 60]

    rows = [row(start + timedelta(seconds=30 * i), cpu_at(i // 2), 100, i) for i in range(2 * (3 * 60 + 10))]
    await store.write(rows)  # two samples a minute, up to 10 minutes into hour 3
    deps = Deps(sessionmaker, None, Retention(POLICY.raw, POLICY.minute, POLICY.hour), 10.0)  # type: ignore[arg-type]
    body = {"target_kind": "app", "target_id": "web", "start": start.isoformat(), "end": (start + timedelta(hours=4)).isoformat(),
            "step_s": 3600, "metrics": ["cpu_pct"]}  # fmt: skip
    expected = [(start + timedelta(hours=h), v) for h, v in enumerate([10.0, 50.0, 30.0, 70.0])]

    async def hourly() -> list[tuple[datetime, float | None]]:
        reply = await query(deps, body)
        assert reply.problem is None and reply.resolution == "1h" and reply.step_s == 3600
        return [(t, round(v, 6) if v is not None else None) for t, v in reply.series[0].points]

    assert await hourly() == expected  # nothing rolled up yet: all from raw samples
    # rolled up to 2h30: hours 0-1 from the hour rollup, 2h00-2h30 from minutes (n=2 each), the rest raw;
    # hour 2 is (30*2*20 + 60*40) / 120 = 30 only if the minute rows weigh their two samples
    await run_retention(sessionmaker, POLICY, start + timedelta(hours=2, minutes=30) + POLICY.lag)
    async with sessionmaker() as s:
        marks = dict((await s.execute(sa.text("SELECT resolution, done_until FROM rollup_state"))).all())
    assert marks == {"1m": start + timedelta(hours=2, minutes=30), "1h": start + timedelta(hours=2)}
    assert await hourly() == expected
    await run_retention(sessionmaker, POLICY, start + timedelta(hours=3, minutes=5) + POLICY.lag)
    assert await hourly() == expected
    # a minute step right after the minute watermark: the last rolled minute and the first raw one
    body |= {"start": (start + timedelta(hours=3, minutes=4)).isoformat(), "step_s": 60,
             "end": (start + timedelta(hours=3, minutes=6)).isoformat()}  # fmt: skip
    reply = await query(deps, body)
    assert reply.resolution == "1m" and [v for _, v in reply.series[0].points] == [70.0, 70.0]
