"""Private repositories as pure data: which credentials an application's repository URL takes, host keys
given by a user read into pins, pinned keys shown with their fingerprints, and the ``GitAuth`` a
deployment or a compose file read carries to the builder.

A deploy key serves ``ssh://`` and scp-like URLs, a token ``https://`` and ``http://`` ones; an
application may hold both (its URL picks one). Host keys are pinned per application and per server, as
known_hosts names it (``host``, or ``[host]:port``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError

from berth_common import ssh_keys
from berth_common.catalogue.git_auth import GitAuth, HostKey, known_hosts_name, ssh_endpoint

DEPLOY_KEY = "deploy_key"
TOKEN = "token"
SOURCES = ("first-contact", "given", "accepted", "offered")


def repository_of(config: Mapping[str, Any]) -> str | None:
    """The application's git repository URL (None for an image source)."""
    source = config.get("source") or {}
    return source.get("repository") if source.get("kind") == "git" else None


def ssh_server(repository: str | None) -> str | None:
    """The known_hosts name of the repository's SSH server (None: not an SSH URL)."""
    endpoint = ssh_endpoint(repository) if repository else None
    return None if endpoint is None else known_hosts_name(*endpoint)


def kind_for(repository: str | None) -> str | None:
    """The credential a repository URL uses: a deploy key (ssh), a token (http/https), or none (git://)."""
    if repository is None:
        return None
    if ssh_server(repository) is not None:
        return DEPLOY_KEY
    return TOKEN if repository.lower().startswith(("https://", "http://")) else None


def given_keys(lines: Iterable[str], host: str) -> list[HostKey]:
    """Host keys a user gives (``ssh-ed25519 AAAA... [comment]``, as a forge publishes them, or a
    known_hosts line for ``host``), pinned for ``host``; ValueError naming the line that does not read."""
    found: list[HostKey] = []
    for i, line in enumerate(lines):
        parts = line.split()
        if len(parts) >= 3 and parts[0] == host:
            parts = parts[1:]
        if len(parts) < 2:
            raise ValueError(f"line {i + 1}: expected 'key-type base64-key' (for example 'ssh-ed25519 AAAA...')")
        try:
            found.append(HostKey(host=host, key_type=parts[0], key=parts[1]))  # type: ignore[arg-type]
        except ValidationError:
            raise ValueError(f"line {i + 1}: not an SSH public host key ({parts[0][:40]!r})") from None
    if not found:
        raise ValueError("give at least one host key")
    return found


def fingerprint(key_type: str, key: str) -> str:
    return ssh_keys.fingerprint(f"{key_type} {key}")


def shown_host_key(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("host", "key_type", "key", "source", "pinned_at")
    return {**{k: row[k] for k in keys}, "fingerprint": fingerprint(row["key_type"], row["key"])}


def pins_for(rows: Iterable[Mapping[str, Any]], host: str, *, offered: bool = False) -> list[HostKey]:
    """The keys pinned for ``host`` (``offered``: those it presented instead, not pinned)."""
    return [
        HostKey(host=r["host"], key_type=r["key_type"], key=r["key"])
        for r in rows
        if r["host"] == host and bool(r["offered"]) == offered
    ]


def ssh_auth(private_key: str, pins: list[HostKey]) -> GitAuth:
    return GitAuth(kind="ssh", private_key=SecretStr(private_key), host_keys=pins)


def token_auth(username: str, token: str) -> GitAuth:
    return GitAuth(kind="https", username=username, token=SecretStr(token))


@dataclass(frozen=True)
class GivenAccess:
    """A credential given with a new application (``kind``: DEPLOY_KEY with the user's own private key and
    optionally the server's host keys, or TOKEN with its user name), stored as if set right after."""

    kind: str
    secret: str
    username: str | None = None
    host_keys: tuple[str, ...] = ()
