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


def _mask_unused_http_parts() -> None:
    """Keep httpx from loading what no Berth process uses: its command-line client and HTTP/2 (about 5 MB).

    httpx imports ``httpx._main`` (click, rich, pygments), when they are installed, only for the ``httpx``
    command; they are installed for the ``berth`` CLI. httpcore imports its HTTP/2 connections (h2, hpack,
    hyperframe) when h2 is installed, for clients made with ``http2=True``, which Berth never makes; h2 is
    installed for the builder's BuildKit session, which imports it itself. With those modules masked,
    httpx and httpcore put their own stand-ins in place. httpx itself is not imported here: processes that
    never use it (the supervisor) do not load it.
    """
    if "httpx" not in _sys.modules:
        _sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    if "httpcore" not in _sys.modules:
        for name in ("httpcore._async.http2", "httpcore._sync.http2"):
            _sys.modules.setdefault(name, None)  # type: ignore[arg-type]


class _LoaderWithoutZstandard:
    """Executes one module (httpx's content decoders) while ``zstandard`` is masked; delegates the rest."""

    def __init__(self, inner: _Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> _Any:
        return getattr(self.inner, name)

    def create_module(self, spec: _Any) -> _Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: _types.ModuleType) -> None:
        masked = "zstandard" not in _sys.modules
        if masked:
            _sys.modules["zstandard"] = None  # type: ignore[assignment]  # `import zstandard` raises meanwhile
        try:
            self.inner.exec_module(module)
        finally:
            if masked:
                del _sys.modules["zstandard"]


class _HttpxDecodersFinder:
    """Finds ``httpx._decoders`` (only it) as the import system would, with the loader above."""

    @classmethod
    def find_spec(cls, name: str, path: _Any = None, target: _Any = None) -> _Any:
        if name != "httpx._decoders":
            return None
        from importlib.machinery import PathFinder

        _sys.meta_path[:] = [f for f in _sys.meta_path if f is not cls]
        spec = PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _LoaderWithoutZstandard(spec.loader)  # type: ignore[assignment]
        return spec


def _import_httpx_without_zstandard() -> None:
    """Keep httpx from loading ``zstandard`` for response decoding.

    httpx imports zstandard, when installed, to accept ``Content-Encoding: zstd`` (and then asks for it in
    every request's ``Accept-Encoding``); no server Berth talks to is asked for zstd. zstandard is installed
    for backups, which import it themselves (``berth_common.codecs``) only when a backup compresses with it.
    Masked only while httpx's decoders module is executed; httpx itself is not imported here.
    """
    if "httpx" not in _sys.modules and "zstandard" not in _sys.modules:
        _sys.meta_path.insert(0, _HttpxDecodersFinder)


def _mask_pydantic_v1() -> None:
    """Keep FastAPI from loading pydantic's v1 compatibility package (about 1 MB per process).

    For every route parameter FastAPI asks whether its type is a pydantic v1 model, importing
    ``pydantic.v1`` to find out, and answers no when that import fails. Berth has no v1 models, so the
    answer is no either way; masked only when nothing has imported it yet.
    """
    if "pydantic.v1" not in _sys.modules:
        _sys.modules["pydantic.v1"] = None  # type: ignore[assignment]


_import_structlog_without_rich()
_import_nats_without_aiohttp()
_mask_unused_http_parts()
_import_httpx_without_zstandard()
_mask_pydantic_v1()
