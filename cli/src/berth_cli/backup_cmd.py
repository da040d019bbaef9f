"""``berth backup`` and ``berth restore``: the control plane in one archive, and a host rebuilt from it.

    berth backup [--data-dir DIR] [--output FILE] [--passphrase-file F]
    berth restore FILE [--data-dir DIR] [--passphrase-file F] [--force]

The archive (``berth-backup-<UTC time>.tar.gz``) holds every service's schema (one consistent
``pg_dump``), the data directory's keys sealed with the passphrase, Traefik's certificates and dynamic
files, the NATS streams (pending commands included; snapshots through the JetStream API), and a manifest
with each member's sha256 (:mod:`berth_cli.backup_archive`). The backup is taken while the platform runs; a restore goes onto a data directory without a database (``--force`` replaces one,
keeping the old aside), then ``berth up`` starts the platform on it. Without ``--passphrase-file`` the
passphrase is asked for on the terminal. The passphrase and the keys are never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from berth_cli.backup_archive import MIN_PASSPHRASE, BackupError, archive_name, check_passphrase
from berth_cli.layout import Paths

PassphraseFile = Annotated[
    Path | None,
    typer.Option("--passphrase-file", help="read the passphrase from this file's first line (default: ask)"),
]
DataDir = Annotated[Path, typer.Option("--data-dir", help="the platform's data directory")]


def read_passphrase(path: Path | None, confirm: bool) -> str:
    """The passphrase from the file's first line, or asked for (twice for a new backup), checked for length."""
    if path is not None:
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise BackupError(f"cannot read the passphrase file: {exc.strerror}") from None
        value = lines[0] if lines else ""
    else:
        value = typer.prompt(
            f"Passphrase (at least {MIN_PASSPHRASE} characters)", hide_input=True, confirmation_prompt=confirm
        )
    return check_passphrase(value)


def backup(
    data_dir: DataDir = Path(".berth"),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="default: ./berth-backup-<time>.tar.gz")] = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Write one archive from which this Berth host can be rebuilt (works while the platform runs)."""
    from datetime import UTC, datetime

    from berth_cli.backup_run import make_backup

    now = datetime.now(UTC)
    target = (output or Path(archive_name(now))).expanduser().resolve()
    try:
        passphrase = read_passphrase(passphrase_file, confirm=True)
        result = make_backup(Paths(data_dir.expanduser().resolve()), target, passphrase, dict(os.environ), now)
    except BackupError as exc:
        typer.echo(f"berth backup: {exc}", err=True)
        raise typer.Exit(1) from None
    heads = ", ".join(f"{s} {h['head'] or '-'}" for s, h in result.heads.items())
    typer.echo(f"{result.path} ({result.size} bytes, {result.members} members; schemas: {heads})")


def restore(
    archive: Annotated[Path, typer.Argument(help="an archive made by berth backup")],
    data_dir: DataDir = Path(".berth"),
    passphrase_file: PassphraseFile = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace the data directory's database (the old one is kept aside)")
    ] = False,
) -> None:
    """Rebuild a data directory from an archive; then `berth up` runs the platform on it."""
    from berth_cli.backup_run import restore_backup

    paths = Paths(data_dir.expanduser().resolve())
    try:
        passphrase = read_passphrase(passphrase_file, confirm=False)
        result = restore_backup(paths, archive.expanduser().resolve(), passphrase, force)
    except BackupError as exc:
        typer.echo(f"berth restore: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"restored onto {paths.root}: {len(result.heads)} schemas, {len(result.keys)} key files, "
        f"{result.traefik_files} Traefik files, {len(result.streams)} NATS streams"
    )
    if result.replaced is not None:
        typer.echo(f"the replaced database and keys are kept in {result.replaced} (and beside the cluster)")
    typer.echo(f"start it with: berth up --data-dir {paths.root}")
