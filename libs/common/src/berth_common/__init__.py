"""Berth shared library: settings, logging, tracing, the bus, the message catalogue and the db base."""

import sys as _sys

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


_import_structlog_without_rich()
