"""structlog configuration: JSON in production, readable console in development.

Every line carries the service name; the deployment id and trace id are added when known (deployment id
through ``bind_deployment``, trace id from the current OpenTelemetry span). Values whose key looks like a
secret are masked before rendering.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from opentelemetry import trace

SECRET_KEY_PATTERN = re.compile(r"(secret|password|token|authorization|api_key|private_key)", re.IGNORECASE)
MASK = "***"


def _add_trace(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event


def _mask_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event.keys()):
        if key != "event" and SECRET_KEY_PATTERN.search(key):
            event[key] = MASK
    return event


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    """Write to whatever ``sys.stderr`` is when the line is logged (it may be replaced, e.g. by tests)."""
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(service: str, *, json: bool, level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace,
        _mask_secrets,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("asyncio", "nats", "uvicorn.access", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind values (deployment_id, message_id...) to every log line inside the block."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
