"""Stats, inspect and /proc documents captured from this machine's engine and kernel, parsed by exact comparison."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from berth_metrics.adapters.host import HostReader
from berth_metrics.domain.host import (
    CpuTimes,
    Disk,
    Memory,
    Mount,
    disk_usage,
    host_cpu_percent,
    parse_loadavg,
    parse_meminfo,
    parse_proc_stat,
    real_mounts,
)
from berth_metrics.domain.stats import (
    ContainerInfo,
    ContainerStats,
    CpuCounters,
    berth_labels,
    container_cpu_percent,
    cpu_percent,
    memory_used,
    parse_inspect,
    parse_stats,
    parse_time,
)
from berth_metrics.settings import REAL_FILESYSTEMS

DATA = Path(__file__).parent / "data"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_one_shot_document_of_a_busy_container():
    stats = parse_stats(load("busy_oneshot_1.json"))
    assert stats == ContainerStats(
        container_id="841d9c0f68f0227df2727c6dec722cea0fd062ab4915b11a909288f3af922ce9",
        name="mbusy",
        read_at=datetime(2026, 11, 22, 2, 7, 0, 310992, tzinfo=UTC),
        cpu=CpuCounters(total_usage=3064561898, system_usage=1716780000000, online_cpus=2),
        precpu=CpuCounters(total_usage=0, system_usage=0, online_cpus=0),
        mem_used=335872,
        mem_limit=25276063744,
        net_rx=736,
        net_tx=0,
        blk_read=0,
        blk_write=0,
        pids=1,
    )
    # one-shot: the engine gives no pre-sample, so the first reading has no CPU % ...
    assert container_cpu_percent(stats, None) is None
    # ... and the next one is measured against it, as docker stats does between its two readings
    second = parse_stats(load("busy_oneshot_2.json"))
    expected = (4170847852 - 3064561898) / (1720820000000 - 1716780000000) * 2 * 100
    assert container_cpu_percent(second, stats) == expected
    assert round(expected, 4) == 54.7666


def test_streamed_document_uses_its_own_pre_sample():
    stats = parse_stats(load("busy_full.json"))
    assert stats.precpu == CpuCounters(total_usage=4560627160, system_usage=1722830000000, online_cpus=2)
    expected = (4952625061 - 4560627160) / (1724830000000 - 1722830000000) * 2 * 100
    # the previous one-shot sample is ignored when the document carries a pre-sample
    assert container_cpu_percent(stats, parse_stats(load("busy_oneshot_1.json"))) == expected
    idle = parse_stats(load("io_full.json"))
    assert container_cpu_percent(idle, None) == 0.0


def test_memory_limit_of_a_limited_container():
    stats = parse_stats(load("limited_oneshot.json"))
    assert (stats.mem_used, stats.mem_limit, stats.net_rx, stats.net_tx) == (327680, 67108864, 696, 0)
    assert stats.read_at == datetime(2026, 11, 22, 2, 7, 5, 343709, tzinfo=UTC)


def test_cgroup_v2_shape_with_block_io_and_two_networks():
    stats = parse_stats(load("cgroup2_documented.json"))
    assert stats.mem_used == 50000000 - 12000000
    assert (stats.net_rx, stats.net_tx) == (1030, 2040)
    assert (stats.blk_read, stats.blk_write) == (4096004, 1030)
    assert stats.cpu == CpuCounters(total_usage=200000000, system_usage=9000000000, online_cpus=4)
    assert stats.read_at == datetime(2024, 3, 1, 10, 0, 5, 500000, tzinfo=UTC)
    assert stats.pids == 7


def test_memory_used_as_docker_stats_computes_it():
    assert memory_used({"usage": 1000, "stats": {"total_inactive_file": 300, "inactive_file": 100}}) == 700
    assert memory_used({"usage": 1000, "stats": {"inactive_file": 100}}) == 900
    assert memory_used({"usage": 1000, "stats": {"total_inactive_file": 5000}}) == 1000
    assert memory_used({"usage": 1000}) == 1000
    assert memory_used({}) is None


def test_cpu_percent_edges():
    a = CpuCounters(100, 1000, 2)
    assert cpu_percent(CpuCounters(600, 2000, 2), a) == 100.0  # half the machine of 2 cores = one core
    assert cpu_percent(CpuCounters(100, 1000, 2), a) is None  # no time passed
    assert cpu_percent(CpuCounters(50, 2000, 2), a) == 0.0  # counter went back (container restarted)
    assert cpu_percent(a, None) is None
    assert cpu_percent(a, CpuCounters(0, 0, 0)) is None


def test_inspect_documents():
    info = parse_inspect(load("limited_inspect.json"))
    assert info == ContainerInfo(
        container_id="1477dd9839429a5352101fa3f5877dfdae2518ffb43e9d3f33edd22fb1df6500",
        name="mlim",
        image="berth-metrics-probe:2",
        labels={"berth.app": "app-7", "berth.deployment": "dep-1", "berth.service": "web", "berth.team": "team-1"},
        running=True,
        restart_count=0,
        health=None,
        started_at=datetime(2026, 11, 22, 2, 6, 57, 274127, tzinfo=UTC),
        status="running",
    )
    assert not info.stalled
    assert berth_labels(info.labels) == {"app": "app-7", "deployment": "dep-1", "service": "web", "team": "team-1"}
    assert parse_inspect(load("unhealthy_inspect.json")).health == "unhealthy"


def test_parse_time():
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("garbage") is None
    assert parse_time(None) is None
    assert parse_time("2026-11-22T02:04:16Z") == datetime(2026, 11, 22, 2, 4, 16, tzinfo=UTC)
    assert parse_time("2026-11-22T03:04:16.5+01:00") == datetime(2026, 11, 22, 2, 4, 16, 500000, tzinfo=UTC)


def test_proc_files_of_this_machine():
    proc = DATA / "proc"
    assert parse_proc_stat((proc / "stat").read_text()) == CpuTimes(
        busy=71680 + 15725 + 915 + 91, total=71680 + 15725 + 915 + 91 + 157462 + 2255
    )
    assert parse_meminfo((proc / "meminfo").read_text()) == Memory(total=24683656 * 1024, available=22943820 * 1024)
    assert parse_loadavg((proc / "loadavg").read_text()) == (7.35, 3.66, 1.66)
    # proc, cgroup, tmpfs, overlay layers of containers, nsfs are not disks; /var/lib/docker is the same device
    assert real_mounts((proc / "mounts").read_text(), REAL_FILESYSTEMS) == [Mount("/dev/vda", "/", "ext4")]


def test_mounts_with_escaped_paths_and_one_entry_per_device():
    text = "/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n/dev/sdb1 /srv/bind xfs rw 0 0\n/dev/sdc /data btrfs rw 0 0\n"
    assert real_mounts(text, ("xfs", "btrfs")) == [
        Mount("/dev/sdb1", "/mnt/my disk", "xfs"),
        Mount("/dev/sdc", "/data", "btrfs"),
    ]
    disk = disk_usage(Mount("/dev/sdc", "/data", "btrfs"), 4096, 1000, 250)
    assert disk == Disk("/data", "/dev/sdc", "btrfs", total=4096000, used=3072000)
    assert disk.percent == 75.0


def test_host_cpu_percent():
    assert host_cpu_percent(CpuTimes(150, 1200), CpuTimes(100, 1000)) == 25.0
    assert host_cpu_percent(CpuTimes(150, 1000), CpuTimes(100, 1000)) is None
    assert host_cpu_percent(CpuTimes(150, 1000), None) is None


def test_reading_the_real_proc():
    reader = HostReader(Path("/proc"), REAL_FILESYSTEMS)
    first = reader.read()
    assert first.cpu_pct is None and first.mem_total > first.mem_used > 0
    assert any(d.path == "/" and d.total > d.used > 0 for d in first.disks)
    second = reader.read()
    assert second.cpu_pct is None or 0.0 <= second.cpu_pct <= 100.0
