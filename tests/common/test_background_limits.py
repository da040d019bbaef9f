"""Background work's CPU and I/O weights and memory limit, as Engine API data, by exact comparison."""

from __future__ import annotations

import pytest

from berth_common.background import BackgroundLimits
from berth_common.settings import BaseServiceSettings

MB = 1024 * 1024


def test_defaults_weigh_a_quarter_of_an_application_and_cap_memory() -> None:
    limits = BaseServiceSettings().background_limits
    assert limits.host_config() == {
        "CpuShares": 256,
        "BlkioWeight": 100,
        "Memory": 2048 * MB,
        "MemorySwap": 2048 * MB,
    }
    assert limits.build_query() == {"cpushares": "256", "memory": str(2048 * MB), "memswap": str(2048 * MB)}


def test_settings_set_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_BACKGROUND_CPU_SHARES", "128")
    monkeypatch.setenv("BERTH_BACKGROUND_BLKIO_WEIGHT", "0")
    monkeypatch.setenv("BERTH_BACKGROUND_MEMORY_MB", "0")
    limits = BaseServiceSettings().background_limits
    assert limits.host_config() == {"CpuShares": 128}
    assert limits.build_query() == {"cpushares": "128"}


def test_buildkit_parent_cgroup_files_v1_and_v2() -> None:
    limits = BackgroundLimits(cpu_shares=256, blkio_weight=100, memory_mb=512)
    assert limits.buildkit_cgroup_files("/cg") == {
        "/cg/cpu/docker/buildkit/cpu.shares": "256",
        "/cg/blkio/docker/buildkit/blkio.weight": "100",
        "/cg/memory/docker/buildkit/memory.limit_in_bytes": str(512 * MB),
    }
    assert limits.buildkit_cgroup_files("/cg", v2=True) == {
        "/cg/docker/buildkit/cpu.weight": "25",
        "/cg/docker/buildkit/io.weight": "default 100",
        "/cg/docker/buildkit/memory.max": str(512 * MB),
    }


@pytest.mark.parametrize(
    "bad", [{"cpu_shares": 1}, {"cpu_shares": 262145}, {"blkio_weight": 5}, {"blkio_weight": 1001}, {"memory_mb": 3}]
)
def test_out_of_range_values_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        BackgroundLimits(**bad)
