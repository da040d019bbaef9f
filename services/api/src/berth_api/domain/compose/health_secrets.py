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
  quotes, so the value is one word wherever it stands (the text it replaces was one).
- ``[CMD, argv...]``: the argv as an equivalent script, every argument quoted exactly (``shlex.quote``) and
  each reference ``"${VAR}"`` in it, so the program gets the same argv with the value in place.

The image needs ``/bin/sh`` for a ``CMD`` check that names a secret (a ``CMD-SHELL`` one needs it anyway).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal
from berth_common.values import env_var_name

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
    state, escaped = "", False
    for p in parts:
        if "text" in p:
            out.append(p["text"])
            state, escaped = _scan(p["text"], state, escaped)
            continue
        if escaped:
            raise ComposeRefusal(where, f"${{{p['secret']}}} names a secret variable right after a backslash")
        ref = f"${{{var(p['secret'])}}}"
        out.append({"'": f"'\"{ref}\"'", '"': ref}.get(state, f'"{ref}"'))
    return "".join(out)


def _scan(text: str, state: str, escaped: bool) -> tuple[str, bool]:
    """The quoting state after ``text`` (``""`` none, ``'`` or ``"``) and whether a backslash is pending."""
    for ch in text:
        if escaped:
            escaped = False
        elif state == "'":
            state = "" if ch == "'" else state
        elif ch == "\\":
            escaped = True
        elif ch == state:
            state = ""
        elif state == "" and ch in "'\"":
            state = ch
    return state, escaped


def _env_var(svc: dict[str, Any], name: str, where: str) -> str:
    """The service's environment variable holding exactly the secret ``name`` (its own of that name first),
    added as ``BERTH_HEALTH_<name>`` when it has none."""
    env: list[dict[str, Any]] = svc.setdefault("environment", [])
    exact = [e["name"] for e in env if e.get("parts") == [{"secret": name}]]
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
