"""An imported template's health check as its author meant it: ``CMD-SHELL`` takes one command string, but
Coolify's heyform (keydb) and Dokploy's vikunja and stack-auth (``[CMD-SHELL, pg_isready, -d, db_prod]``)
give the command's words as separate items (``[CMD-SHELL, keydb-cli, --pass, ..., ping]``). Docker runs ``/bin/sh -c keydb-cli --pass ... ping`` (the shell runs ``keydb-cli`` alone, the
rest are its positional parameters), so the check never asks the server; compose passes it through and
Berth refuses it. The import joins the words into the one command they spell, and says so. Pure."""

from __future__ import annotations

from typing import Any


def one_shell_command(spec: dict[str, Any], svc: str, notes: list[str]) -> None:
    """Join a ``CMD-SHELL`` test of several items into one command (in place); a word with a space is in double
    quotes, so a ``${...}`` reference in it is still read by compose and the shell."""
    check = spec.get("healthcheck")
    if not isinstance(check, dict):
        return
    test = check.get("test")
    if not isinstance(test, list) or len(test) <= 2 or test[0] != "CMD-SHELL":
        return
    words = [str(w) for w in test[1:]]
    check["test"] = ["CMD-SHELL", " ".join(_word(w) for w in words)]
    notes.append(
        f"services.{svc}.healthcheck.test: CMD-SHELL takes one command; its {len(words)} items are joined into "
        f"one (Docker would run {words[0]} alone, the others being the shell's arguments)"
    )


def _word(word: str) -> str:
    if not any(c.isspace() for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
