"""Reading Dokploy's ``template.toml`` as its parser (npm ``toml@3.0.0``, TOML 0.4, lenient) reads it.

:mod:`tomllib` is tried first; when it refuses a file, two leniencies of toml@3.0.0 that real blueprints rely
on are applied and the file is read again:

* an unknown escape in a basic string (``"\\$(...)"``, ``"EXAMPLE\\{user}"``) keeps the backslash and the
  character, as toml@3.0.0's grammar does (``string_char = ESCAPED / (!'"' char:.)``);
* ``key = []`` in a table followed by ``[[table.key]]`` entries: the empty array is dropped, so the array
  of tables stands (tomllib: "Cannot mutate immutable namespace")."""

from __future__ import annotations

import re
import tomllib
from typing import Any

_ESCAPES = set('btnfr"\\uU')
_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]\s*(#.*)?$")
_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
_EMPTY_ARRAY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=\s*\[\s*\]\s*(#.*)?$")


class TomlError(ValueError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


def escape_unknown(text: str) -> str:
    """Double the backslash of each unknown escape inside basic strings (single- and multi-line);
    literal strings and comments are left alone."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith('"""', i) or text[i] == '"':
            quote = '"""' if text.startswith('"""', i) else '"'
            out.append(quote)
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                c = text[i]
                if c == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    multiline_cont = quote == '"""' and nxt in " \t\r\n"
                    out.append(c + nxt if nxt in _ESCAPES or multiline_cont else "\\\\" + nxt)
                    i += 2
                    continue
                if quote == '"' and c == "\n":
                    break
                out.append(c)
                i += 1
            if text.startswith(quote, i):
                out.append(quote)
                i += len(quote)
            continue
        if text.startswith("'''", i) or text[i] == "'":
            quote = "'''" if text.startswith("'''", i) else "'"
            end = text.find(quote, i + len(quote))
            end = n if end < 0 else end + len(quote)
            out.append(text[i:end])
            i = end
            continue
        if text[i] == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(text[i:end])
            i = end
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def drop_shadowed_arrays(text: str) -> str:
    """Drop ``key = []`` lines of a table when ``[[table.key]]`` appears in the file."""
    lines = text.split("\n")
    arrays = {m.group(1).replace(" ", "") for line in lines if (m := _ARRAY_TABLE.match(line))}
    table = ""
    kept: list[str] = []
    for line in lines:
        if m := _ARRAY_TABLE.match(line):
            table = m.group(1).replace(" ", "")
        elif m := _TABLE.match(line):
            table = m.group(1).replace(" ", "")
        elif (m := _EMPTY_ARRAY.match(line)) and f"{table}.{m.group(1)}".lstrip(".") in arrays:
            continue
        kept.append(line)
    return "\n".join(kept)


def loads(text: str) -> tuple[dict[str, Any], list[str]]:
    """The parsed document and the leniencies that were needed (empty when tomllib read it as is)."""
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as first:
        used: list[str] = []
        fixed = escape_unknown(text)
        if fixed != text:
            used.append("unknown escapes in basic strings kept literally")
        shadowed = drop_shadowed_arrays(fixed)
        if shadowed != fixed:
            used.append("an empty array followed by its [[array of tables]]")
        if not used:
            raise TomlError(str(first)) from None
        try:
            return tomllib.loads(shadowed), used
        except tomllib.TOMLDecodeError as exc:
            raise TomlError(str(exc)) from None
