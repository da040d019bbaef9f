"""A verified control plane backup's files written back into a data directory (the key files at its top
level, Traefik's files in their places with their recorded modes, every file holding a private key 0600),
and what a restore changed, to undo it if a later step fails."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth_cli import backup_archive as fmt
from berth_cli.datadir import write_private
from berth_cli.layout import Paths


@dataclass
class Verified:
    """An archive whose members all matched the manifest and whose passphrase opened it, unpacked."""

    manifest: dict[str, Any]
    staging: Path
    keys: dict[str, bytes]

    def member(self, name: str) -> Path:
        return self.staging / "members" / name


@dataclass
class Changes:
    """What a restore made (removed again if it fails), what it moved aside (put back), and the entries
    the data directory held before (any other entry it holds after a failure is removed)."""

    root: Path
    before: set[str] | None = None
    made: list[Path] = field(default_factory=list)
    moved: list[tuple[Path, Path]] = field(default_factory=list)

    def undo(self) -> None:
        for path in reversed(self.made):
            remove(path)
        for original, aside in reversed(self.moved):
            if aside.exists() and not original.exists():
                os.replace(aside, original)
        if self.before is None:
            remove(self.root)
        elif self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.name not in self.before:
                    remove(entry)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def restore_files(paths: Paths, verified: Verified, changes: Changes) -> int:
    """The archive's files written back: the key files (0600) at the data directory's top level, Traefik's
    files in their places, those that hold a private key 0600 in folders 0700 (sealed ones, and those a
    version 1 archive kept in clear); the number of Traefik files."""
    tdir = paths.root / fmt.TRAEFIK_PREFIX.rstrip("/")
    traefik = sorted(n for n in [*verified.manifest["members"], *verified.keys] if n.startswith(fmt.TRAEFIK_PREFIX))
    if traefik and not tdir.exists():
        changes.made.append(tdir)
    for name, data in sorted(verified.keys.items()):
        if not name.startswith(fmt.TRAEFIK_PREFIX):
            target = paths.root / name
            changes.made.append(target)
            write_private(target, data)
    private: set[str] = set()
    for name in traefik:
        target = paths.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        sealed = verified.keys.get(name)
        data = verified.member(name).read_bytes() if sealed is None else sealed
        if sealed is not None or fmt.traefik_secret(name, data):
            private.add(name)
            write_private(target, data)
        else:
            shutil.copyfile(verified.member(name), target)
    # the recorded modes, deepest first (a folder's own mode may forbid writing into it)
    for name, mode in sorted(fmt.traefik_modes(verified.manifest).items(), key=lambda nm: -nm[0].count("/")):
        target = paths.root / name
        if target.exists() and not target.is_symlink():
            target.chmod(mode & 0o600 if name in private else mode)
    return len(traefik)
