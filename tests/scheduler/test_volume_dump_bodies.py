"""Volume backups (pure): the helper containers' create bodies (exact data), their names, what is stopped
for consistency, and the volume source of the backup commands (a database source without ``kind`` still
reads as before)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from berth_common.background import BackgroundLimits
from berth_common.catalogue import BackupSource, RestoreBackup, StartBackup, VolumeSource
from berth_scheduler.domain import volume_dumps as vol


def _body(cmd: list[str], purpose: str, *, read_only: bool, stdin: bool) -> dict:
    return {
        "Image": "berth/busybox:1",
        "Cmd": cmd,
        "Entrypoint": [],
        "User": "0:0",
        "WorkingDir": "/",
        "AttachStdin": stdin,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": stdin,
        "StdinOnce": stdin,
        "Tty": False,
        "NetworkDisabled": True,
        "Labels": {"berth.managed": "true", "berth.volume-helper": purpose},
        "HostConfig": {
            "NetworkMode": "none",
            "AutoRemove": False,
            "Mounts": [{"Type": "volume", "Source": "berth-app1-data", "Target": "/v", "ReadOnly": read_only}],
            "CpuShares": 256,
            "BlkioWeight": 100,
            "Memory": 2048 * 1024 * 1024,
            "MemorySwap": 2048 * 1024 * 1024,
        },
    }


def test_the_dump_helper_reads_the_volume_read_only_as_a_tar_on_stdout() -> None:
    assert vol.dump_body("berth-app1-data") == _body(
        ["tar", "-C", "/v", "-cf", "-", "."], "backup", read_only=True, stdin=False
    )


def test_the_restore_helper_extracts_its_stdin_into_the_volume() -> None:
    assert vol.restore_body("berth-app1-data") == _body(
        ["tar", "-C", "/v", "-xf", "-"], "restore", read_only=False, stdin=True
    )


def test_emptying_a_confirmed_volume_runs_rm_from_find_never_a_shell() -> None:
    assert vol.empty_body("berth-app1-data") == _body(
        ["find", "/v", "-mindepth", "1", "-maxdepth", "1", "-exec", "rm", "-rf", "{}", "+"],
        "empty",
        read_only=False,
        stdin=False,
    )


def test_a_restored_volume_is_labelled_as_the_applications() -> None:
    assert vol.volume_body("berth-app1-data-copy", "app1", "team1") == {
        "Name": "berth-app1-data-copy",
        "Driver": "local",
        "Labels": {"berth.team": "team1", "berth.app": "app1", "berth.managed": "true"},
    }


def test_helper_names_are_per_run_and_always_valid_container_names() -> None:
    assert vol.helper_name("backup", "b-1") == "berth-volume-backup-b-1"
    odd = vol.helper_name("restore", "a b/../c")
    assert odd.startswith("berth-volume-restore-") and len(odd) == len("berth-volume-restore-") + 24
    assert vol.helper_name("restore", "a b/../c") == odd  # the same run finds its leftover again


def test_what_is_stopped_is_the_teams_only() -> None:
    assert vol.service_selector("app1", "web") == {"berth.app": "app1", "berth.service": "web"}
    assert vol.foreign({"berth.team": "other"}, "team1")
    assert not vol.foreign({"berth.team": "team1"}, "team1")
    assert not vol.foreign(None, "team1") and not vol.foreign({}, "team1")


def test_the_source_union_reads_old_database_payloads_and_volume_ones() -> None:
    common = {
        "backup_id": "b",
        "team_id": "t",
        "database_id": "d",
        "destinations": [{"kind": "directory", "path": "/x"}],
    }
    old = StartBackup.model_validate({**common, "source": {"container": "c", "engine": "postgresql"}})
    assert isinstance(old.source, BackupSource) and old.source.kind == "database"
    src = {"kind": "volume", "volume": "berth-app1-data", "application_id": "app1", "stop_service": "web"}
    cmd = StartBackup.model_validate({**common, "source": src})
    assert isinstance(cmd.source, VolumeSource)
    assert (cmd.source.engine, cmd.source.database) == ("volume", "berth-app1-data")
    assert StartBackup.model_validate_json(cmd.model_dump_json()) == cmd


@pytest.mark.parametrize(
    "change",
    [
        {"volume": "-v"},
        {"volume": "../etc"},
        {"volume": "a" * 65},
        {"stop_containers": ["a b"]},
        {"stop_service": "Web_1"},
        {"unknown": 1},
    ],
)
def test_a_volume_source_is_validated(change: dict) -> None:
    with pytest.raises(ValidationError):
        VolumeSource(**{"volume": "berth-app1-data", "application_id": "app1", **change})


def test_a_volume_restore_over_an_existing_one_needs_the_confirmation() -> None:
    fields = {
        "restore_id": "r",
        "backup_id": "b",
        "team_id": "t",
        "database_id": "d",
        "origin": {"kind": "directory", "path": "/x"},
        "key": "/x/d/b.tar.gz",
        "sha256": "0" * 64,
        "compression": "gzip",
        "target": {"kind": "volume", "volume": "berth-app1-data", "application_id": "app1"},
        "overwrite": True,
    }
    with pytest.raises(ValidationError, match="confirm_overwrite"):
        RestoreBackup.model_validate(fields)
    ok = RestoreBackup.model_validate({**fields, "confirm_overwrite": True})
    assert isinstance(ok.target, VolumeSource)


def test_helpers_run_with_the_configured_background_limits() -> None:
    limits = BackgroundLimits(cpu_shares=64, blkio_weight=0, memory_mb=256)
    for body in (
        vol.dump_body("berth-app1-data", limits),
        vol.restore_body("berth-app1-data", limits),
        vol.empty_body("berth-app1-data", limits),
    ):
        host = body["HostConfig"]
        assert {k: host.get(k) for k in ("CpuShares", "BlkioWeight", "Memory", "MemorySwap")} == {
            "CpuShares": 64,
            "BlkioWeight": None,
            "Memory": 256 * 1024 * 1024,
            "MemorySwap": 256 * 1024 * 1024,
        }
