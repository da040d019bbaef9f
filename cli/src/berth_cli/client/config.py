"""Where the client finds its API: named contexts (API URL and token) in the user's config directory.

The file is ``$XDG_CONFIG_HOME/berth/config.json`` (``~/.config/berth/config.json`` by default), written
atomically with mode 0600 because it holds tokens. ``BERTH_CONTEXT`` (or ``--context``) picks a context
other than the current one; ``BERTH_API_URL`` and ``BERTH_TOKEN`` override the context's values, so a script
or CI job needs no file at all.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8420"
CONTEXT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Chosen:
    """``berth --context NAME ...``: the context for this run (None: BERTH_CONTEXT or the current one)."""

    context: str | None = None


class ConfigError(Exception):
    """No usable context, or a bad context name or config file."""


def config_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "berth" / "config.json"


@dataclass(frozen=True)
class Context:
    """One api and its token; ``proxy_url``: where a local platform's proxy listens (``berth login
    --data-dir``), so the applications' URLs carry its port."""

    name: str
    api_url: str
    token: str
    proxy_url: str = ""


@dataclass
class Config:
    """The contexts and which one is current."""

    current: str | None = None
    contexts: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Config:
        try:
            data: Any = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} cannot be read: {exc}") from None
        contexts = data.get("contexts") if isinstance(data, dict) else None
        if not isinstance(contexts, dict):
            raise ConfigError(f"{path} is not a berth config file")
        return cls(current=data.get("current"), contexts={str(k): dict(v) for k, v in contexts.items()})

    def save(self, path: Path) -> None:
        """Write the file atomically, readable by its owner only (it holds tokens)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = json.dumps({"current": self.current, "contexts": self.contexts}, indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(body)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, name: str, api_url: str, token: str, proxy_url: str = "") -> None:
        check_name(name)
        self.contexts[name] = {"api_url": api_url.rstrip("/"), "token": token}
        if proxy_url:
            self.contexts[name]["proxy_url"] = proxy_url.rstrip("/")
        self.current = name

    def use(self, name: str) -> None:
        if name not in self.contexts:
            raise ConfigError(f"no context {name!r} (berth context list)")
        self.current = name

    def remove(self, name: str) -> None:
        if self.contexts.pop(name, None) is None:
            raise ConfigError(f"no context {name!r} (berth context list)")
        if self.current == name:
            self.current = None


def check_name(name: str) -> None:
    if not CONTEXT_NAME.match(name):
        raise ConfigError(f"a context name is 1-64 letters, digits, '.', '_' or '-' (not {name!r})")


def resolve(environ: dict[str, str] | None = None, wanted: str | None = None) -> Context:
    """The context to use: ``wanted`` or BERTH_CONTEXT or the current one, with BERTH_API_URL / BERTH_TOKEN
    laid over it."""
    env = dict(os.environ if environ is None else environ)
    config = Config.load(config_path(env))
    name = wanted or env.get("BERTH_CONTEXT") or config.current
    stored: dict[str, str] = {}
    if name:
        if name not in config.contexts and not env.get("BERTH_TOKEN"):
            raise ConfigError(f"no context {name!r} (berth context list)")
        stored = config.contexts.get(name, {})
    url = (env.get("BERTH_API_URL") or stored.get("api_url") or DEFAULT_URL).rstrip("/")
    token = env.get("BERTH_TOKEN") or stored.get("token", "")
    if not token:
        raise ConfigError("not logged in: run `berth login` (or set BERTH_TOKEN)")
    proxy = stored.get("proxy_url", "") if url == stored.get("api_url") else ""  # another api: not its proxy
    return Context(name=name or "(environment)", api_url=url, token=token, proxy_url=proxy)
