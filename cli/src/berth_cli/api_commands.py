"""The api package's own commands, run by the cli on the host (argv only; the cli imports no service
package): found beside this Python or on PATH, given the database URL (which holds a password) in their
environment, never in argv, their ``<prog>: <reason>`` lines shown under the cli command's name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import typer


def run(prog: str, args: list[str], database_url: str, shown_as: str) -> int:
    """Run ``prog args`` with BERTH_DATABASE_URL; echo its output; its exit code."""
    beside = Path(sys.executable).parent / prog
    found = str(beside) if beside.is_file() else shutil.which(prog)
    if found is None:
        typer.echo(f"{shown_as}: {prog} not found (the api package is not installed here)", err=True)
        raise typer.Exit(1)
    env = {**os.environ, "BERTH_DATABASE_URL": database_url}
    proc = subprocess.run([found, *args], env=env, capture_output=True, text=True)
    if proc.stdout:
        typer.echo(proc.stdout, nl=False)
    for line in proc.stderr.splitlines():
        if line.startswith(f"{prog}: "):
            line = f"{shown_as}: " + line[len(prog) + 2 :]
        typer.echo(line, err=True)
    return proc.returncode
