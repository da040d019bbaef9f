""".env files: parse ``KEY=VALUE`` lines and write them back. Pure, no I/O.

The grammar (the common subset of docker compose, python-dotenv and shells):

- blank lines and lines whose first non-blank character is ``#`` are skipped;
- an optional ``export `` prefix is ignored;
- the name is ``[A-Za-z_][A-Za-z0-9_]*`` (anything else is an error naming the line);
- a value in single quotes is taken literally (it may span lines);
- a value in double quotes understands ``\\n \\r \\t \\" \\\\ \\$`` (other backslashes stay as they are) and may
  span lines;
- an unquoted value ends at a comment (``#`` after a blank) and loses its surrounding blanks;
- after a closing quote only blanks and a ``#`` comment may follow;
- a name given twice: the last value wins. ``${VAR}`` is not expanded (values are data).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from berth_common.redaction import MASK
from berth_common.values import ENV_NAME_PATTERN

NAME_RE = re.compile(ENV_NAME_PATTERN)
_SAFE_RE = re.compile(r"^[A-Za-z0-9_./:@%+,=-]+$")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}
MAX_LINES = 10_000


class DotenvError(ValueError):
    """A line that is not ``KEY=VALUE``; ``line`` is 1-based. The message never holds the value."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(f"line {line}: {why}")
        self.line = line
        self.why = why


@dataclass(frozen=True)
class Entry:
    name: str
    value: str
    line: int

    def __repr__(self) -> str:  # values may be secrets
        return f"Entry({self.name!r}, line={self.line})"


def parse(content: str) -> list[Entry]:
    """Every assignment, in order, a repeated name keeping its last value (at its first position)."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) > MAX_LINES:
        raise DotenvError(MAX_LINES + 1, f"a .env file has at most {MAX_LINES} lines")
    found: dict[str, Entry] = {}
    i = 0
    while i < len(lines):
        number = i + 1
        text = lines[i].lstrip(" \t")
        i += 1
        if not text or text.startswith("#"):
            continue
        if text.startswith("export") and text[6:7] in (" ", "\t"):
            text = text[6:].lstrip(" \t")
        if "=" not in text:
            raise DotenvError(number, "expected KEY=VALUE")
        name, rest = text.split("=", 1)
        name = name.rstrip(" \t")
        if not NAME_RE.fullmatch(name):
            shown = name[:40] if name.isprintable() else "(unprintable)"
            raise DotenvError(number, f"invalid variable name {shown!r}: use [A-Za-z_][A-Za-z0-9_]* (<= 128)")
        if rest.lstrip(" \t")[:1] in ("'", '"'):
            value, i = _quoted(rest.lstrip(" \t"), lines, i, number)
        else:
            value = _unquoted(rest)
        if "\x00" in value:
            raise DotenvError(number, "NUL characters are not allowed in a value")
        if name in found:
            found[name] = Entry(name, value, found[name].line)
        else:
            found[name] = Entry(name, value, number)
    return list(found.values())


def _unquoted(rest: str) -> str:
    """Up to a comment (a '#' after a blank: ``A=b#c`` keeps the '#'), without surrounding blanks."""
    m = re.search(r"[ \t]#", rest)
    if m:
        rest = rest[: m.start()]
    return rest.strip(" \t")


def _quoted(rest: str, lines: list[str], i: int, number: int) -> tuple[str, int]:
    """The value of a quoted assignment starting at ``rest`` (the opening quote); continues on later lines."""
    quote = rest[0]
    text = rest[1:]
    out: list[str] = []
    while True:
        j = 0
        while j < len(text):
            c = text[j]
            if c == quote:
                tail = text[j + 1 :].strip(" \t")
                if tail and not tail.startswith("#"):
                    raise DotenvError(number, "unexpected text after the closing quote")
                return "".join(out), i
            if c == "\\" and quote == '"' and j + 1 < len(text):
                nxt = text[j + 1]
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                j += 2
                continue
            out.append(c)
            j += 1
        if i >= len(lines):
            raise DotenvError(number, f"the value's {quote} quote is never closed")
        out.append("\n")
        text = lines[i]
        i += 1


def quote(value: str) -> str:
    """A value as it is written back: bare when it is plainly safe, else in escaped double quotes."""
    if _SAFE_RE.fullmatch(value):
        return value
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("$", "\\$")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def render(entries: Iterable[tuple[str, str | None]], header: str = "") -> str:
    """``.env`` text; an entry with value None is a secret, written as a comment (masked), never its value."""
    out = [f"# {line}" for line in header.splitlines()] if header else []
    for name, value in entries:
        if value is None:
            out.append(f"# {name}={MASK} (secret: masked; an admin exports it with ?reveal_secrets=true)")
        else:
            out.append(f"{name}={quote(value)}")
    return "\n".join(out) + "\n"
