"""The backup commands (pure): secrets sealed on the wire and hidden in repr, names validated, restores over
an existing database only when confirmed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from berth_common.catalogue import BackupSource, DirectoryDestination, RestoreBackup, S3Destination, StartBackup

SECRET, PASSWORD = "s3-secret-never-shown", "db-password-never-shown"


def _command() -> StartBackup:
    return StartBackup(
        backup_id="b1",
        team_id="t1",
        database_id="db1",
        source=BackupSource(container="berth-db-shop-1", engine="postgresql", database="shop", password=PASSWORD),
        destinations=[
            S3Destination(endpoint="http://127.0.0.1:9000", bucket="backups", access_key="AK", secret_key=SECRET),
            DirectoryDestination(path="/srv/backups"),
        ],
    )


def test_secrets_are_sealed_on_the_wire_and_open_at_the_consumer() -> None:
    cmd = _command()
    wire = cmd.model_dump_json()
    assert SECRET not in wire and PASSWORD not in wire
    assert SECRET not in repr(cmd) and PASSWORD not in repr(cmd)
    received = StartBackup.model_validate_json(wire)
    s3 = received.destinations[0]
    assert isinstance(s3, S3Destination)
    assert (received.source.reveal(), s3.reveal()) == (PASSWORD, SECRET)
    assert SECRET not in received.model_dump_json()  # sealed again when forwarded or stored


@pytest.mark.parametrize(
    "change",
    [
        {"database": "-Fp"},  # never read as an option by the dump tool
        {"user": "--help"},
        {"container": "a b"},
        {"engine": "oracle"},
    ],
)
def test_a_value_that_would_reach_an_argv_is_checked(change: dict) -> None:
    with pytest.raises(ValidationError):
        BackupSource(**{"container": "c", "engine": "postgresql", **change})


def test_paths_and_prefixes_stay_inside() -> None:
    with pytest.raises(ValidationError):
        DirectoryDestination(path="/srv/../etc")
    with pytest.raises(ValidationError):
        DirectoryDestination(path="relative")
    with pytest.raises(ValidationError):
        S3Destination(endpoint="http://h", bucket="b1b", prefix="../x/", access_key="a", secret_key="s")


def test_restoring_over_an_existing_database_needs_the_confirmation() -> None:
    cmd = _command()
    fields = {
        "restore_id": "r1",
        "backup_id": "b1",
        "team_id": "t1",
        "database_id": "db1",
        "origin": cmd.destinations[1],
        "key": "/srv/backups/db1/x.dump.gz",
        "sha256": "0" * 64,
        "compression": "gzip",
        "target": cmd.source,
    }
    assert RestoreBackup(**fields).overwrite is False
    with pytest.raises(ValidationError, match="segments"):
        RestoreBackup(**{**fields, "key": "/srv/backups/../../etc/shadow"})
    with pytest.raises(ValidationError, match="confirm_overwrite"):
        RestoreBackup(**fields, overwrite=True)
    assert RestoreBackup(**fields, overwrite=True, confirm_overwrite=True).overwrite
