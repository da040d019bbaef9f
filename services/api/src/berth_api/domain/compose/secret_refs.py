"""Secret variables inside a compose file's environment values, e.g.
``DATABASE_URL: postgres://app:${db_password}@db:5432/app``: pure.

A secret is written neither into the compose file nor into its stored translation. The parser interpolates
each secret variable as a placeholder that names it (unguessable: it holds a nonce made for each input,
``usecases.compose_apps.placeholder_nonce``); :func:`carry` then turns an environment value holding
placeholders into ``parts`` (plain text and the secret's name), and the deployment's snapshot renders it
from the application's variables (:func:`render`) as a secret variable of the service: sealed on the bus,
masked wherever it is shown.

An argument of the service's command or entrypoint holding placeholders (``redis-server --requirepass
${REDIS_PASSWORD}``, common in Coolify's templates) keeps its text with ``${NAME}`` in the argv, and its
parts go in ``secret_args``: the deployment's snapshot carries its rendered value sealed (``SecretArg``),
which the scheduler puts in place of the argument in the container's configuration only.

A healthcheck holding placeholders reads the secret from the container's own environment when it runs
(``health_secrets``): the check becomes a shell command referring to an environment variable of the service
that holds the secret.

A placeholder anywhere else in the translation (an image, a label, a working directory ...) is refused naming
the spot: there the value would be stored and shown in the clear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from berth_api.domain.compose import health_secrets
from berth_api.domain.compose.keys import ComposeRefusal

NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def placeholder(name: str, nonce: str) -> str:
    """What the parser interpolates for the secret variable ``name``."""
    return f"@@berth-secret-{nonce}:{name}@@"


def placeholders(names: Iterable[str], nonce: str) -> dict[str, str]:
    """The parser's values for the application's secret variables."""
    return {name: placeholder(name, nonce) for name in names}


def carry(translation: dict[str, Any], nonce: str) -> None:
    """Replace every placeholder of ``nonce`` in ``translation`` (changed in place): an environment value
    becomes ``{"name", "value": None, "parts": [...]}``; an argument of ``command`` or ``entrypoint`` its
    text with ``${NAME}`` and ``secret_args: [{argv, index, parts}]``; a healthcheck a shell command reading
    it from the service's environment (``health_secrets``); one anywhere else raises ``ComposeRefusal``."""
    found = re.compile(re.escape(f"@@berth-secret-{nonce}:") + f"({NAME})@@")
    for svc in translation.get("services") or []:
        for entry in svc.get("environment") or []:
            value = entry.get("value")
            if isinstance(value, str) and found.search(value):
                entry["value"] = None
                entry["parts"] = _parts(found, value)
        for key in ("command", "entrypoint"):
            argv = svc.get(key)
            for i, arg in enumerate(argv if isinstance(argv, list) else []):
                if isinstance(arg, str) and found.search(arg):
                    parts = _parts(found, arg)
                    argv[i] = "".join(p.get("text") or "${" + p["secret"] + "}" for p in parts)
                    svc.setdefault("secret_args", []).append({"argv": key, "index": i, "parts": parts})
        health_secrets.carry(svc, lambda text: _parts(found, text) if found.search(text) else None, _spot(svc))
    for key, value in translation.items():
        if key == "services" and isinstance(value, list):
            for svc in value:
                _refuse_elsewhere(svc, found, tuple(_spot(svc).split("/")))
        elif key == "volume_options" and isinstance(value, dict):  # named at the compose file's spot
            for volume, opts in value.items():
                _volume_secret(opts, found)
                _refuse_elsewhere(opts, found, ("volumes", volume, "driver_opts"))
        else:
            _refuse_elsewhere(value, found, (key,))


def _volume_secret(opts: dict[str, Any], found: re.Pattern[str]) -> None:
    """A share's password option naming a secret variable (``password=${NAME}``, the whole value) leaves
    ``o`` (changed in place) for the volume's ``secret``: ``{"option", "secret": NAME}``."""
    flags = str(opts.get("o") or "").split(",")
    for i, flag in enumerate(flags):
        option, _, value = flag.partition("=")
        m = found.fullmatch(value)
        if option in ("password", "pass") and m:
            opts["secret"] = {"option": option, "secret": m.group(1)}
            opts["o"] = ",".join(flags[:i] + flags[i + 1 :])
            if not opts["o"]:
                del opts["o"]
            return


def _spot(svc: Mapping[str, Any]) -> str:
    return f"services/{svc.get('name')}"


def _parts(found: re.Pattern[str], value: str) -> list[dict[str, str]]:
    parts: list[dict[str, str]] = []
    at = 0
    for m in found.finditer(value):
        if m.start() > at:
            parts.append({"text": value[at : m.start()]})
        parts.append({"secret": m.group(1)})
        at = m.end()
    if at < len(value):
        parts.append({"text": value[at:]})
    return parts


def _refuse_elsewhere(node: Any, found: re.Pattern[str], path: tuple[str, ...]) -> None:
    if isinstance(node, str):
        m = found.search(node)
        if m:
            raise ComposeRefusal(
                "/".join(path),
                f"${{{m.group(1)}}} names a secret variable: a secret goes only into a service's environment "
                "values (the file and the translation never hold it in the clear)",
            )
    elif isinstance(node, Mapping):
        for key, value in node.items():
            _refuse_elsewhere(value, found, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_elsewhere(value, found, (*path, str(i)))


def secret_names(parts: Iterable[Mapping[str, str]]) -> list[str]:
    """The secret variables an environment value's parts name."""
    return [p["secret"] for p in parts if "secret" in p]


def render(parts: Iterable[Mapping[str, str]], values: Mapping[str, str]) -> str:
    """An environment value from its parts and the application's variables (``KeyError`` names a secret
    variable the application no longer has)."""
    return "".join(p["text"] if "text" in p else values[p["secret"]] for p in parts)
