"""Secret variables inside a compose service's healthcheck, e.g. ``pg_isready -U ${POSTGRES_USER}`` or
``[CMD, redis-cli, -a, ${REDIS_PASSWORD}, ping]`` (Coolify's templates have many): pure.

The value never enters the container's healthcheck configuration (shown by ``docker inspect``, stored in
the translation): the check reads it from the container's own environment when it runs. The check becomes
a shell command (Docker runs it as ``/bin/sh -c`` in the container) in which each secret reference is the
shell's ``${VAR}`` of an environment variable of the service holding exactly that secret: one the service
already has (``POSTGRES_PASSWORD: ${DB_PASSWORD}``), else one Berth adds to the service's environment,
``BERTH_HEALTH_<NAME>`` (a secret environment value like the others: sealed, masked).

- ``[CMD-SHELL, script]`` (argv ``/bin/sh -c script``): each reference is put in the script as the quoting
  around it asks: ``"${VAR}"`` outside quotes, ``${VAR}`` inside double quotes, ``'"${VAR}"'`` inside single
  quotes (the quoting starts afresh inside a command substitution, ``$(...)`` or backquotes), so the value
  is one word wherever it stands and is never read as shell code.
- ``[CMD, argv...]``: the argv as an equivalent script, every argument quoted exactly (``shlex.quote``) and
  each reference ``"${VAR}"`` in it, so the program gets the same argv with the value in place.

The image needs ``/bin/sh`` for a ``CMD`` check that names a secret (a ``CMD-SHELL`` one needs it anyway).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal
from berth_common.values import ENV_NAME_RE, env_var_name

OWN_PREFIX = "BERTH_HEALTH_"
SHELL = ["/bin/sh", "-c"]

Parts = list[dict[str, str]]


def carry(svc: dict[str, Any], split: Callable[[str], Parts | None], spot: str) -> None:
    """Rewrite the healthcheck of the translated service ``svc`` (changed in place; a worker keeps it in
    ``health_command``, a web service in ``health.command``) when it names a secret. ``split``: a text's
    parts (``{"text"}``, ``{"secret"}``), None when it names none; ``spot``: ``services/<name>``."""
    holder, key = (svc.get("health") or {}, "command") if svc.get("kind") == "web" else (svc, "health_command")
    argv = holder.get(key)
    if not isinstance(argv, list):
        return
    split_args = [split(a) if isinstance(a, str) else None for a in argv]
    if not any(split_args):
        return
    where = f"{spot}/healthcheck/test"

    def var(name: str) -> str:
        return _env_var(svc, name, where)

    if len(argv) == 3 and argv[:2] == SHELL and split_args[0] is None and split_args[1] is None:
        script = shell_script(split_args[2] or [], var, where)
    else:
        words = [
            _word(parts if parts is not None else [{"text": a}], var) for a, parts in zip(argv, split_args, strict=True)
        ]
        script = " ".join(words)
    holder[key] = [*SHELL, script]


def _word(parts: Parts, var: Callable[[str], str]) -> str:
    """One argument as a shell word: its text quoted, each secret ``"${VAR}"``."""
    if not parts:
        return "''"
    return "".join(shlex.quote(p["text"]) if "text" in p else f'"${{{var(p["secret"])}}}"' for p in parts)


def shell_script(parts: Parts, var: Callable[[str], str], where: str) -> str:
    """A shell script's text with each secret as the quoting around it asks (see the module)."""
    out: list[str] = []
    at = Quoting()
    for p in parts:
        if "text" in p:
            out.append(p["text"])
            at.feed(p["text"])
            continue
        if at.escaped:
            raise ComposeRefusal(where, f"${{{p['secret']}}} names a secret variable right after a backslash")
        ref = f"${{{var(p['secret'])}}}"
        out.append({"'": f"'\"{ref}\"'", '"': ref}.get(at.quote, f'"{ref}"'))
    return "".join(out)


@dataclass
class Quoting:
    """Where a shell script's text stands after what was fed: its quote (``""`` none, ``'`` or ``"``), a
    pending backslash, and the command substitutions it is inside (``$(...)``, backquotes), each with the
    quote around it (the quoting starts afresh inside one) and, for ``$(``, the parentheses open in it."""

    quote: str = ""
    escaped: bool = False
    frames: list[tuple[str, str, int]] = field(default_factory=list)
    previous: str = ""

    def feed(self, text: str) -> None:
        for ch in text:
            self._one(ch)

    def _one(self, ch: str) -> None:
        previous, self.previous = self.previous, ch
        if self.escaped:
            self.escaped, self.previous = False, ""
        elif self.quote == "'":
            self.quote = "" if ch == "'" else "'"
        elif ch == "\\":
            self.escaped = True
        elif ch == "`" and self.frames and self.frames[-1][1] == "`" and not self.quote:
            self.quote = self.frames.pop()[0]
        elif ch == "`" or (ch == "(" and previous == "$"):
            self.frames.append((self.quote, ch, 0))
            self.quote = ""
        elif self.quote == '"':
            self.quote = "" if ch == '"' else '"'
        elif ch in "'\"":
            self.quote = ch
        elif ch in "()" and self.frames and self.frames[-1][1] == "(":
            outside, kind, depth = self.frames[-1]
            if ch == "(" or depth:
                self.frames[-1] = (outside, kind, depth + (1 if ch == "(" else -1))
            else:
                self.quote = self.frames.pop()[0]


def _env_var(svc: dict[str, Any], name: str, where: str) -> str:
    """The service's environment variable holding exactly the secret ``name`` (its own of that name first),
    added as ``BERTH_HEALTH_<name>`` when it has none."""
    env: list[dict[str, Any]] = svc.setdefault("environment", [])
    # a shell reads only its own names: ``discovery.type`` holds the value but ``$discovery.type`` is not it
    exact = [e["name"] for e in env if e.get("parts") == [{"secret": name}] and ENV_NAME_RE.fullmatch(e["name"])]
    if exact:
        return name if name in exact else exact[0]
    own = OWN_PREFIX + name
    try:
        env_var_name(own)
    except ValueError as exc:
        raise ComposeRefusal(where, f"${{{name}}}: the variable Berth adds for it, {own}: {exc}") from None
    if any(e["name"] == own for e in env):
        raise ComposeRefusal(where, f"${{{name}}}: Berth adds {own} for it, which the service sets itself")
    env.append({"name": own, "value": None, "parts": [{"secret": name}]})
    env.sort(key=lambda e: str(e["name"]))
    return own
