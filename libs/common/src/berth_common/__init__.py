"""Berth shared library: settings, logging, tracing, the bus, the message catalogue and the db base."""

import importlib as _importlib
import sys as _sys
import types as _types
from typing import Any as _Any

__version__ = "0.1.0"


def _import_structlog_without_rich() -> None:
    """Import structlog so that it does not load ``rich`` (about 13 MB per process).

    structlog imports rich, when installed, only to pretty-print locals in tracebacks, which Berth never
    renders (JSON or plain console lines). rich is installed for the ``berth`` CLI, so each service would
    otherwise carry it. Masked only while structlog is first imported; later imports of rich work as usual.
    """
    if "structlog" in _sys.modules or "rich" in _sys.modules:
        return
    _sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError meanwhile
    try:
        import structlog.processors  # noqa: F401
    finally:
        del _sys.modules["rich"]


class _LoadOnUse(_types.ModuleType):
    """Stands for a module not imported yet: the first attribute read imports it and reads from it."""

    def __getattr__(self, name: str) -> _Any:
        return getattr(_importlib.import_module(self.__name__), name)


def _import_nats_without_aiohttp() -> None:
    """Import nats-py so that it does not load ``aiohttp`` (about 8 MB per process with its dependencies).

    nats-py imports aiohttp, when installed, at import time and uses it only for its WebSocket transport
    (``ws://`` and ``wss://`` server URLs). Services that speak HTTP through httpx, or not at all, would
    carry it for nothing. aiohttp (and multidict) are masked while nats' transport module is imported, then
    left there as stand-ins that import the real modules on first use: a WebSocket URL still works.
    """
    if "nats" in _sys.modules or "aiohttp" in _sys.modules:
        return
    _sys.modules["aiohttp"] = None  # type: ignore[assignment]
    try:
        import nats.aio.transport as transport
    except ImportError:  # nats-py itself missing: berth_common.bus will say so
        return
    finally:
        del _sys.modules["aiohttp"]
    for name in ("aiohttp", "multidict"):
        if getattr(transport, name, None) is None:
            setattr(transport, name, _LoadOnUse(name))


_import_structlog_without_rich()
_import_nats_without_aiohttp()
