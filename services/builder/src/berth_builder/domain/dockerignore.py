"""A minimal ``.dockerignore``: Docker's pattern syntax (``*``, ``?``, ``[...]``, ``**``, ``!`` exceptions,
comments), where a pattern matching a directory excludes everything under it and the last matching
pattern wins. ``.git`` directories are always left out of the build context (a clone's ``.git/config``
holds the repository URL, credentials included)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

ALWAYS_EXCLUDED = (".git",)


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    negated: bool
    source: str


def _translate(pattern: str) -> str:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "!^" else i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return "".join(out)


def parse(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:].strip()
        line = posixpath.normpath(line).lstrip("/")
        if line in ("", "."):
            continue
        try:
            regex = re.compile(_translate(line))
        except re.error:
            continue  # a pattern Docker would reject too: ignore it rather than fail the build
        patterns.append(Pattern(regex, negated, raw.strip()))
    return patterns


class Matcher:
    def __init__(self, text: str = "") -> None:
        self.patterns = parse(text)
        self.has_exceptions = any(p.negated for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """``path`` is relative to the context root, '/'-separated."""
        parts = path.split("/")
        if any(part in ALWAYS_EXCLUDED for part in parts):
            return True
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for pattern in self.patterns:
            if any(pattern.regex.match(p) for p in prefixes):
                result = not pattern.negated
        return result

    def prune(self, directory: str) -> bool:
        """True when nothing under an excluded ``directory`` can be re-included (skip walking it)."""
        if any(part in ALWAYS_EXCLUDED for part in directory.split("/")):
            return True
        return self.excluded(directory) and not self.has_exceptions
