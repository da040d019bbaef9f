"""What a rule sees for each of its targets, and which stored resolution answers a query (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from berth_metrics.domain.host import Disk
from berth_metrics.domain.lifecycle import Restart
from berth_metrics.domain.readings import ContainerReading, ServerReading, Snapshot, rule_values
from berth_metrics.domain.series import Retention, derive, metrics_for, pick_resolution

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def container(cid: str, name: str, cpu: float | None, mem: int = 50, **labels: str) -> ContainerReading:
    return ContainerReading(cid, name, "img", labels, NOW, cpu, mem, 100, 0, 0, 0, 0, 0, None)


SNAP = Snapshot(
    containers={
        "a" * 64: container("a" * 64, "web-1", 30.0, 10, app="web", team="t1"),
        "b" * 64: container("b" * 64, "web-2", 90.0, 20, app="web", team="t1"),
        "c" * 64: container("c" * 64, "db-1", None, 70, app="db", team="t2"),
        "d" * 64: container("d" * 64, "loose", 5.0, 1),
    },
    server=ServerReading(
        "vm1",
        NOW,
        12.5,
        600,
        1000,
        0.5,
        0.4,
        0.3,
        (Disk("/", "/dev/a", "ext4", 100, 40), Disk("/data", "/dev/b", "xfs", 100, 85)),
    ),
)
RESTARTS = [
    Restart(NOW - timedelta(seconds=10), "c" * 64, "db-1", {"app": "db", "team": "t2"}),
    Restart(NOW - timedelta(seconds=20), "c" * 64, "db-1", {"app": "db", "team": "t2"}),
    Restart(NOW - timedelta(seconds=900), "c" * 64, "db-1", {"app": "db", "team": "t2"}),
    Restart(NOW - timedelta(seconds=5), "e" * 64, "gone-1", {"app": "web", "team": "t1"}),
]


def values(kind, target, metric, team="t1", window=300, known=()):
    got = rule_values(kind=kind, target_id=target, metric=metric, team_id=team, window_s=window, snapshot=SNAP,
                      restarts=RESTARTS, now=NOW, known=known)  # fmt: skip
    return {v.instance: v.value for v in got}


def test_container_targets():
    assert values("container", "web-2", "cpu_pct") == {"web-2": 90.0}
    assert values("container", "b" * 12, "mem_pct") == {"b" * 12: 20.0}
    assert values("container", "*", "cpu_pct") == {"web-1": 30.0, "web-2": 90.0}  # the team's containers only
    assert values("container", "db-1", "restarts", team="t2") == {"db-1": 2.0}  # within the window
    assert values("container", "gone-1", "restarts") == {"gone-1": 1.0}  # restarted, not running now
    assert values("container", "nothing", "cpu_pct", known=["nothing"]) == {"nothing": None}


def test_app_targets_take_the_worst_container_and_sum_restarts():
    assert values("app", "web", "cpu_pct") == {"web": 90.0}
    assert values("app", "web", "restarts") == {"web": 1.0}
    assert values("app", "db", "restarts", team="t2", window=60) == {"db": 2.0}
    assert values("app", "db", "cpu_pct", team="t2") == {"db": None}
    assert values("app", "*", "mem_pct", team="t2") == {"db": 70.0}


def test_server_targets():
    assert values("server", "vm1", "cpu_pct") == {"vm1": 12.5}
    assert values("server", "vm1", "mem_pct") == {"vm1": 60.0}
    got = rule_values(kind="server", target_id="*", metric="disk_pct", team_id=None, window_s=60, snapshot=SNAP,
                      restarts=[], now=NOW)  # fmt: skip
    assert [(v.instance, v.value, v.labels) for v in got] == [("vm1", 85.0, {"server": "vm1", "mount": "/data"})]
    assert values("server", "other", "cpu_pct") == {}


def test_resolution_picking():
    keep = Retention(raw=timedelta(hours=24), minute=timedelta(days=7), hour=timedelta(days=90))
    assert pick_resolution(NOW - timedelta(hours=1), 10, NOW, keep, 10) == ("raw", 10)
    assert pick_resolution(NOW - timedelta(hours=1), 5, NOW, keep, 10) == ("raw", 10)
    assert pick_resolution(NOW - timedelta(hours=1), 60, NOW, keep, 10) == ("1m", 60)
    assert pick_resolution(NOW - timedelta(hours=1), 7200, NOW, keep, 10) == ("1h", 7200)
    assert pick_resolution(NOW - timedelta(days=2), 10, NOW, keep, 10) == ("1m", 60)  # raw is gone by then
    assert pick_resolution(NOW - timedelta(days=30), 60, NOW, keep, 10) == ("1h", 3600)
    assert pick_resolution(NOW - timedelta(days=365), 60, NOW, keep, 10) == ("1h", 3600)


def test_derived_metrics():
    assert derive("mem_pct", {"mem_used": 25.0, "mem_limit": 100.0}) == 25.0
    assert derive("disk_pct", {"disk_used": 1.0, "disk_total": 0.0}) is None
    assert derive("cpu_pct", {"cpu_pct": 3.0}) == 3.0
    assert metrics_for("mount", None) == ["disk_used", "disk_total", "disk_pct"]
    assert metrics_for("container", ["cpu_pct", "load1"]) == ["cpu_pct"]
