"""Parts of the supervisor: one supervised child's record, the parent-death signal, logging, the pidfile."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import structlog

from berth_cli.layout import ChildSpec

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the forked child only calls it


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervisor dies, so nothing is left behind."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Tee:
    def __init__(self, *files: IO[str]) -> None:
        self.files = files

    def write(self, text: str) -> None:
        for f in self.files:
            f.write(text)
            f.flush()

    def flush(self) -> None:
        for f in self.files:
            f.flush()


def configure_logging(logfile: Path, echo: bool) -> Any:
    out = logfile.open("a", encoding="utf-8")
    sink = _Tee(out, sys.stderr) if echo else _Tee(out)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sink),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger("supervisor")


@dataclass
class Child:
    spec: ChildSpec
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    state: str = "pending"
    restarts: int = 0
    failures: int = 0
    started_at: float | None = None
    last_exit: int | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def public(self) -> dict[str, Any]:
        return {
            **self.spec.to_public(),
            "pid": self.proc.pid if self.proc and self.proc.returncode is None else None,
            "state": self.state,
            "restarts": self.restarts,
            "started_at": self.started_at,
            "last_exit": self.last_exit,
            "log": str(self.log_path),
        }


def acquire_pidfile(path: Path) -> IO[str]:
    """Hold an exclusive lock on the pidfile for the life of the process (one supervisor per data dir)."""
    f = path.open("a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise SystemExit(f"another supervisor is running for {path.parent}") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f
