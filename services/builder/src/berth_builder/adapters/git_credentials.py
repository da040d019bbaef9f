"""A private repository's credentials on disk for the length of one checkout: a directory of its own
(0700) under the builder's workspaces holding the deploy key and the pinned known_hosts (0600 each),
removed when the checkout ends, however it ends, and at the builder's start (a crash's leftovers;
``domain.git_credentials`` says what goes in it)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from berth_builder.domain import git_credentials
from berth_builder.domain.git_credentials import CredentialPlan
from berth_builder.domain.source import GitUrl
from berth_common.catalogue.git_auth import GitAuth

AUTH_DIR = ".auth"  # under the builder's workspaces: one directory per checkout that authenticates


def auth_base(workspaces: Path) -> Path:
    return workspaces / AUTH_DIR


def forget_all(workspaces: Path) -> None:
    """Remove what a builder that stopped mid-checkout (a crash, a kill) left of its credentials."""
    shutil.rmtree(auth_base(workspaces), ignore_errors=True)


def _write(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)


@asynccontextmanager
async def credentials(auth: GitAuth | None, url: GitUrl, base: Path) -> AsyncIterator[CredentialPlan]:
    """The plan for ``auth`` (an empty one without credentials), its files written while the block runs."""
    if auth is None:
        yield CredentialPlan()
        return
    if auth.kind != "ssh":
        yield git_credentials.plan(auth, url, "/nonexistent")
        return
    await asyncio.to_thread(base.mkdir, parents=True, exist_ok=True)
    directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="git-auth-", dir=base))  # 0700
    try:
        found = git_credentials.plan(auth, url, str(directory))
        await asyncio.to_thread(_write, directory, found.files)
        yield found
    finally:
        await asyncio.to_thread(shutil.rmtree, directory, True)
