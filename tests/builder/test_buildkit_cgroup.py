"""BuildKit's parent cgroup takes the background limits (the engine ignores them on ``POST /build``)."""

from __future__ import annotations

from pathlib import Path

from berth_builder.adapters.cgroups import limit_buildkit
from berth_common.background import BackgroundLimits


def test_v1_files_are_written_under_each_controller(tmp_path: Path) -> None:
    assert limit_buildkit(BackgroundLimits(cpu_shares=128, blkio_weight=50, memory_mb=64), tmp_path) == []
    got = {str(p.relative_to(tmp_path)): p.read_text() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert got == {
        "blkio/docker/buildkit/blkio.weight": "50",
        "cpu/docker/buildkit/cpu.shares": "128",
        "memory/docker/buildkit/memory.limit_in_bytes": str(64 * 1024 * 1024),
    }


def test_v2_is_recognised_and_a_failure_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory")
    (tmp_path / "docker").write_text("a file where the folder should be")
    problems = limit_buildkit(BackgroundLimits(), tmp_path)
    assert [p.split(":")[0] for p in problems] == [
        f"{tmp_path}/docker/buildkit/cpu.weight",
        f"{tmp_path}/docker/buildkit/io.weight",
        f"{tmp_path}/docker/buildkit/memory.max",
    ]
    assert limit_buildkit(BackgroundLimits(), tmp_path / "missing") == [
        f"{tmp_path / 'missing'}: no cgroup file system"
    ]
