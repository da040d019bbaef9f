"""A secret variable inside a compose service's healthcheck (Coolify's ``pg_isready -U ${SERVICE_USER_POSTGRES}``,
``[CMD, redis-cli, -a, ${SERVICE_PASSWORD_REDIS}, PING]``): the check becomes a shell command reading the
secret from an environment variable of the service (its own holding exactly that secret, else one Berth adds,
``BERTH_HEALTH_<NAME>``), so its value is never in the check. The rewritten command is run by a real
``/bin/sh`` to show that the program gets the value in place, whatever characters it holds."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest

from berth_api.adapters.compose_parser import normalise
from berth_api.domain.compose import ComposeRefusal, precheck, secret_refs, translate

HOLDERS = secret_refs.placeholders(["PW", "DB_USER"], "n0nce")
STACK = """
services:
  db:
    image: postgres:16
    environment: {POSTGRES_USER: '${DB_USER}', POSTGRES_PASSWORD: '${PW}', ALSO: '${PW}'}
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U ${DB_USER} -h $${HOST} -d 'app ${PW}' -p \\"${PW}\\""]
      interval: 2s
  cache:
    image: redis:7
    command: redis-server --requirepass ${PW}
    healthcheck:
      test: ["CMD", "redis-cli", "-a", "${PW}", "it's", "PING"]
  web:
    image: busybox
    ports: ['8080']
    healthcheck:
      test: ["CMD", "wget", "-qO-", "--header=X-User: ${DB_USER}", "http://localhost:8080/up"]
"""


def _translated(text: str, **kw: Any) -> dict[str, Any]:
    found = asyncio.run(normalise(text, HOLDERS))
    return translate(found.model, precheck(text), secrets_nonce="n0nce", **kw)


def test_a_healthcheck_reads_its_secrets_from_the_services_environment() -> None:
    db, cache, web = _translated(STACK)["services"]
    # CMD-SHELL: the service's own variables holding exactly the secret (the first by name), as the quoting
    # around each asks
    assert db["health_command"] == [
        "/bin/sh",
        "-c",
        'pg_isready -U "${POSTGRES_USER}" -h ${HOST} -d \'app \'"${ALSO}"\'\' -p "${ALSO}"',
    ]
    assert db["environment"] == [
        {"name": "ALSO", "value": None, "parts": [{"secret": "PW"}]},
        {"name": "POSTGRES_PASSWORD", "value": None, "parts": [{"secret": "PW"}]},
        {"name": "POSTGRES_USER", "value": None, "parts": [{"secret": "DB_USER"}]},
    ]
    assert db["health"] == {"interval": 2.0}
    # CMD: the same argv as a shell command, every argument quoted; Berth's own variable for the secret
    assert cache["health_command"] == ["/bin/sh", "-c", "redis-cli -a \"${BERTH_HEALTH_PW}\" 'it'\"'\"'s' PING"]
    assert cache["environment"] == [{"name": "BERTH_HEALTH_PW", "value": None, "parts": [{"secret": "PW"}]}]
    assert cache["command"] == ["redis-server", "--requirepass", "${PW}"]  # its argument: a secret arg as before
    # a web service keeps its check in ``health``; the path is read before
    assert web["health_path"] == "/up"
    assert web["health"] == {
        "command": [
            "/bin/sh",
            "-c",
            "wget -qO- '--header=X-User: '\"${BERTH_HEALTH_DB_USER}\" http://localhost:8080/up",
        ]
    }
    assert web["environment"] == [{"name": "BERTH_HEALTH_DB_USER", "value": None, "parts": [{"secret": "DB_USER"}]}]
    assert "n0nce" not in str([db, cache, web])


def test_a_healthcheck_without_a_secret_is_kept_as_it_is() -> None:
    text = "services:\n  a:\n    image: x\n    healthcheck: {test: ['CMD', 'check', '${MODE}']}\n"
    found = asyncio.run(normalise(text, {**HOLDERS, "MODE": "prod"}))
    (a,) = translate(found.model, precheck(text), secrets_nonce="n0nce")["services"]
    assert a["health_command"] == ["check", "prod"] and "environment" not in a


ODD = "it's a \"pa$$ `w0rd`\\ *;"  # spaces, both quotes, $, backquotes, a backslash, a glob, a semicolon


def _run(argv: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(argv, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_program_gets_the_secret_in_place_as_the_file_wrote_it() -> None:
    """What the container's shell runs: the argv of a CMD check as the file gave it with the value in place; a
    CMD-SHELL check with the value as one word in each quoting (outside, in double and in single quotes, and
    afresh inside a command substitution: ``$(...)``, with parentheses in it, and backquotes)."""
    script = (
        "printf '[%s]' ${PW} x${PW}y \"in ${PW}\" 'lit ${PW}' '$$HOME' \"$(printf %s '${PW}')\" "
        '"$( (printf %s ${PW}) )" "`printf %s \'${PW}\'`" "$(printf %s "${PW}")x"'
    )
    text = (
        "services:\n  a:\n    image: x\n    healthcheck:\n"
        "      test: ['CMD', 'printf', '[%s]', '${PW}', '-p${PW}x', '', '$$HOME', 'a b']\n"
        "  b:\n    image: x\n    environment: {PASSWORD: '${PW}'}\n    healthcheck:\n"
        f"      test: {json.dumps(['CMD-SHELL', script])}\n"
    )
    a, b = _translated(text)["services"]
    assert _run(a["health_command"], {"BERTH_HEALTH_PW": ODD}) == f"[{ODD}][-p{ODD}x][][$HOME][a b]"
    assert b["health_command"][:2] == ["/bin/sh", "-c"] and ODD not in str(b)
    words = [ODD, f"x{ODD}y", f"in {ODD}", f"lit {ODD}", "$HOME", ODD, ODD, ODD, f"{ODD}x"]
    assert _run(b["health_command"], {"PASSWORD": ODD}) == "".join(f"[{w}]" for w in words)


@pytest.mark.parametrize(
    ("service", "spot", "why"),
    [
        (
            "    healthcheck: {test: ['CMD-SHELL', 'check \\${PW}']}\n",
            "healthcheck/test",
            "${PW} names a secret variable right after a backslash",
        ),
        (
            "    environment: {BERTH_HEALTH_PW: other}\n    healthcheck: {test: ['CMD', 'check', '${PW}']}\n",
            "healthcheck/test",
            "${PW}: Berth adds BERTH_HEALTH_PW for it, which the service sets itself",
        ),
        (  # the path Berth's own readiness check asks for is shown on the service
            "    ports: ['80']\n    healthcheck: {test: ['CMD', 'wget', 'http://localhost/up?t=${PW}']}\n",
            "health_path",
            "${PW} names a secret variable",
        ),
    ],
)
def test_a_secret_a_healthcheck_cannot_read_is_refused_naming_the_spot(service: str, spot: str, why: str) -> None:
    with pytest.raises(ComposeRefusal) as caught:
        _translated("services:\n  a:\n    image: x\n" + service)
    assert caught.value.spot == f"services/a/{spot}" and caught.value.why.startswith(why), caught.value
