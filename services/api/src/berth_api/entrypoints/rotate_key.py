"""``berth-api-rotate-key``: rotate the api's secret key (``berth_api.usecases.rotation``) from the command line.

    berth-api-rotate-key --key-file PATH [--keep-backup]

The database URL (with the api's role and password) comes from ``BERTH_DATABASE_URL`` in the environment,
never from the arguments, so no password shows in the process list. ``berth secrets rotate-key`` runs this
command. On success it prints what it re-sealed; when rotation cannot start or a value does not open, it
prints why on stderr (``berth-api-rotate-key: <reason>``) and exits 1 with nothing changed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from berth_api.usecases.rotation import RotationError, rotate
from berth_common.db import make_engine, make_sessionmaker
from berth_common.sealing import UnsealError

PROG = "berth-api-rotate-key"


async def _rotate(url: str, key_file: Path, keep_backup: bool) -> str:
    engine = make_engine(url, "api")
    try:
        done = await rotate(make_sessionmaker(engine), key_file, keep_backup=keep_backup)
    finally:
        await engine.dispose()
    counts = ", ".join(f"{n} in {table}" for table, n in done.resealed.counts.items())
    kept = f"; the old key is kept in {done.backup} (0600): delete it once you no longer need it" if done.backup else ""
    return f"new key in {done.key_path}; re-sealed {done.resealed.total} value(s): {counts}{kept}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Rotate the api's secret key (BERTH_DATABASE_URL).")
    parser.add_argument("--key-file", type=Path, required=True, help="the api's key file")
    parser.add_argument("--keep-backup", action="store_true", help="keep the old key file after success")
    args = parser.parse_args(argv)
    url = os.environ.get("BERTH_DATABASE_URL", "")
    if not url:
        print(f"{PROG}: BERTH_DATABASE_URL is not set", file=sys.stderr)
        return 2
    try:
        message = asyncio.run(_rotate(url, args.key_file.expanduser().resolve(), args.keep_backup))
    except (RotationError, UnsealError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0


def run() -> None:
    """The console script."""
    sys.exit(main())
