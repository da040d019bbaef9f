"""A Typer group whose subcommands are built when they are first asked for.

Building every command of ``berth`` (typer inspects each function's signature) and importing every command's
module (httpx, rich, pydantic) costs each call of the CLI most of a second; ``berth down`` needs none of it.
:class:`LazyGroup` keeps the commands built eagerly and a table of the others (name -> what registers it on
a Typer); the one a command line names is built on first use, and listing them (``--help``, completion)
builds them all, in the order of :attr:`LazyGroup.order`, so that help reads as it always has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar

import typer
import typer.main
from typer.core import TyperGroup


def build(register: Callable[[typer.Typer], None], name: str) -> Any:
    """The click command ``register`` adds as ``name``, built as on ``berth`` itself (no rich markup)."""
    holder = typer.Typer(rich_markup_mode=None)
    holder.callback()(_nothing)  # a group even with one subcommand
    register(holder)
    return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]


def _nothing() -> None:
    """The placeholder callback of :func:`build`'s holder."""


class LazyCommands(MutableMapping[str, Any]):
    """The subcommands of a group: those built, and those built from ``lazy`` on first read."""

    def __init__(
        self, built: MutableMapping[str, Any], lazy: Mapping[str, Callable[[typer.Typer], None]], order: tuple[str, ...]
    ) -> None:
        self.built = built
        self.lazy = lazy
        self.order = order

    def __getitem__(self, name: str) -> Any:
        if name not in self.built and name in self.lazy:
            self.built[name] = build(self.lazy[name], name)
        return self.built[name]

    def __contains__(self, name: object) -> bool:
        return name in self.built or name in self.lazy

    def __iter__(self) -> Iterator[str]:
        listed = [n for n in self.order if n in self]
        yield from listed
        yield from (n for n in list(self.built) + list(self.lazy) if n not in listed)

    def __len__(self) -> int:
        return len(set(self.built) | set(self.lazy))

    def __setitem__(self, name: str, command: Any) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]


class LazyGroup(TyperGroup):
    """A TyperGroup with :attr:`lazy` subcommands (set on a subclass: typer makes the group itself)."""

    lazy: ClassVar[Mapping[str, Callable[[typer.Typer], None]]] = {}
    order: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands, self.lazy, self.order)
