"""What every client command shares: the context chosen on the command line, the api session that turns
problems into a message and an exit code, and the common options."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from berth_cli.client.api import Api, ApiError
from berth_cli.client.config import Chosen, ConfigError, resolve
from berth_cli.client.output import fail

__all__ = ["AppRef", "Chosen", "DbRef", "Json", "complete_application", "complete_database", "session"]


@contextmanager
def session(timeout: float = 30.0, interrupted: str = "") -> Iterator[Api]:
    """An api client of the chosen context; an api problem or a missing login ends the command (exit 1),
    Ctrl-C ends it with 130 (saying ``interrupted`` when given: what goes on without the command)."""
    try:
        with Api(resolve(wanted=Chosen.context), timeout=timeout) as api:
            yield api
    except (ApiError, ConfigError) as exc:
        fail(exc)
    except KeyboardInterrupt:
        if interrupted:
            typer.echo(f"\n{interrupted}", err=True)
        raise typer.Exit(130) from None


def complete_application(incomplete: str) -> list[str]:
    """Shell completion of application names: asked of the api with a short timeout, nothing on failure."""
    try:
        with Api(resolve(), timeout=2.0) as api:
            names = sorted({a["name"] for a in api.applications()})
    except Exception:  # completion must never print an error into the user's shell
        return []
    return [n for n in names if n.startswith(incomplete)]


def complete_database(incomplete: str) -> list[str]:
    try:
        with Api(resolve(), timeout=2.0) as api:
            names = sorted({d["name"] for d in api.get("/v1/databases")})
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


Json = Annotated[bool, typer.Option("--json", help="machine-readable output (the api's JSON)")]
AppRef = Annotated[
    str,
    typer.Argument(
        help="the application: id, NAME, PROJECT/NAME or PROJECT/ENV/NAME", autocompletion=complete_application
    ),
]
DbRef = Annotated[str, typer.Argument(help="the database: id or name", autocompletion=complete_database)]
