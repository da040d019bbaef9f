"""Compose-style interpolation as the importers read it: ``$NAME``, ``${NAME}``, ``${NAME:-default}``,
``${NAME-default}``, ``${NAME:?message}``, ``${NAME?message}`` with defaults that nest (``${A:-${B:-x}}``)
and ``$$`` as a literal dollar; and the rewriting of such references into Berth's ``${var.NAME}``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


@dataclass(frozen=True)
class Ref:
    start: int
    end: int
    name: str
    operator: str | None = None  # ':-', '-', ':?', '?', ':+', '+'
    argument: str | None = None
    braced: bool = True

    @property
    def default(self) -> str | None:
        return self.argument if self.operator in (":-", "-") else None

    @property
    def required(self) -> bool:
        return self.operator in (":?", "?")


def _closing(text: str, start: int) -> int:
    """Index of the '}' closing the '${' whose body starts at ``start`` (nested braces counted), or -1."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def scan(text: str) -> Iterator[Ref]:
    """The top-level references of ``text``; ``$$`` is skipped as an escape."""
    i = 0
    while i < len(text):
        if text[i] != "$":
            i += 1
            continue
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            end = _closing(text, i + 2)
            if end < 0:
                return
            body = text[i + 2 : end]
            m = _NAME.match(body)
            if m:
                rest = body[m.end() :]
                op = next((o for o in _OPERATORS if rest.startswith(o)), None)
                if op or not rest:
                    arg = rest[len(op) :] if op else None
                    yield Ref(i, end + 1, m.group(0), op, arg)
            i = end + 1
            continue
        m = _NAME.match(text, i + 1)
        if m:
            yield Ref(i, m.end(), m.group(0), braced=False)
            i = m.end()
            continue
        i += 1


def all_refs(text: str) -> Iterator[Ref]:
    """Every reference, including those nested in defaults."""
    for ref in scan(text):
        yield ref
        if ref.argument:
            yield from all_refs(ref.argument)


def rewrite(text: str, keep: Callable[[Ref], bool]) -> str:
    """Replace each reference that ``keep`` does not keep with ``${var.NAME}`` (defaults move to the
    variable); ``$$`` and kept references stay as they are."""
    out: list[str] = []
    last = 0
    for ref in scan(text):
        if keep(ref):
            continue
        out.append(text[last : ref.start])
        out.append("${var." + ref.name + "}")
        last = ref.end
    out.append(text[last:])
    return "".join(out)


def walk_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """A copy of a YAML document with ``fn`` applied to every string (mapping keys excepted)."""
    if isinstance(value, dict):
        return {k: walk_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [walk_strings(v, fn) for v in value]
    if isinstance(value, str):
        return fn(value)
    return value


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def env_items(environment: Any) -> Iterator[tuple[str, str | None]]:
    """(key, value) pairs of a compose ``environment`` or ``build.args`` (list or mapping form)."""
    if isinstance(environment, dict):
        for k, v in environment.items():
            yield str(k), None if v is None else str(v).lower() if isinstance(v, bool) else str(v)
    elif isinstance(environment, list):
        for item in environment:
            if isinstance(item, str):
                key, sep, val = item.partition("=")
                yield key.strip(), val if sep else None
