"""``berth-api-admin-token``: mint a new admin token (``berth_api.usecases.admin_tokens``) on the host.

    berth-api-admin-token --email EMAIL --token-file PATH [--team NAME]

The database URL (with the api's role and password) comes from ``BERTH_DATABASE_URL`` in the environment,
never from the arguments. ``berth admin token`` runs this command. On success it prints the token and where
it was written; otherwise it prints why on stderr (``berth-api-admin-token: <reason>``) and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from berth_api.usecases.admin_tokens import Minted, NoAdminError, mint
from berth_common.db import make_engine, make_sessionmaker

PROG = "berth-api-admin-token"


async def _mint(url: str, email: str, team: str | None, token_file: Path) -> Minted:
    engine = make_engine(url, "api")
    try:
        return await mint(make_sessionmaker(engine), email, team, token_file)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Mint a new admin token (BERTH_DATABASE_URL).")
    parser.add_argument("--email", required=True, help="an admin's e-mail address")
    parser.add_argument("--team", default=None, help="the team (default: the admin's oldest)")
    parser.add_argument("--token-file", type=Path, required=True, help="where to write the token (0600)")
    args = parser.parse_args(argv)
    url = os.environ.get("BERTH_DATABASE_URL", "")
    if not url:
        print(f"{PROG}: BERTH_DATABASE_URL is not set", file=sys.stderr)
        return 2
    path = args.token_file.expanduser().resolve()
    try:
        minted = asyncio.run(_mint(url, args.email, args.team, path))
    except NoAdminError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(f"new admin token for {args.email} in team {minted.team_name}, written to {path} (audited):")
    print(minted.plaintext)
    return 0


def run() -> None:
    """The console script."""
    sys.exit(main())
