"""Handing freed heap memory back to the system after each collection (glibc only; elsewhere nothing).

A collection allocates and frees a few MB (the engine's JSON answers, the rows written). glibc keeps
freed chunks inside the heap for reuse, so the resident set would stay at its highest point although the
process no longer uses that memory; the same holds for what Python freed after compiling modules at
start-up. ``malloc_trim(0)`` returns whole free pages to the system (it takes well under a millisecond).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
_looked = False


def _malloc_trim() -> Callable[[int], int] | None:
    global _trim, _looked
    if not _looked:
        _looked = True
        try:
            _trim = ctypes.CDLL(None).malloc_trim  # the C library the process already runs on
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
            _trim = None
    return _trim


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
