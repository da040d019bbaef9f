"""What the commands print: JSON for scripts (``--json``), plain-column tables for people, errors on stderr.

Tables are rendered by rich without borders and with trailing blanks removed, so the same data prints the
same text on any terminal wider than it."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from berth_cli.client.api import ApiError, render_problem
from berth_cli.client.config import ConfigError


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    grid = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for h in headers:
        grid.add_column(h, no_wrap=True, overflow="fold")
    for row in rows:
        grid.add_row(*(cell(v) for v in row))
    console = Console(width=10_000, force_terminal=False, color_system=None, highlight=False)
    with console.capture() as out:
        console.print(grid)
    return "\n".join(line.rstrip() for line in out.get().splitlines())


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    typer.echo(table(headers, rows))


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """``name:     value`` lines, the values aligned."""
    for name, value in fields:
        typer.echo(f"{name + ':':<10}{cell(value)}")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def when(value: str | None) -> str:
    """An api timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC as the api gives it)."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def fail(error: Exception, code: int = 1) -> NoReturn:
    """Print an api problem or a config error on stderr and exit."""
    message = render_problem(error) if isinstance(error, ApiError) else f"berth: {error}"
    typer.echo(message, err=True)
    raise typer.Exit(code)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def failing(*kinds: type[Exception]) -> tuple[type[Exception], ...]:
    return (ApiError, ConfigError, *kinds)
