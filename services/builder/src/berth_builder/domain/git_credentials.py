"""A private repository's credentials as pure data: the files git's ssh reads and the environment git gets.

With a deploy key (``GitAuth.kind == "ssh"``, ``ssh://`` and scp-like URLs) the builder writes the private
key and a known_hosts file of the pinned host keys into a directory of its own (0700, files 0600, removed
after: ``adapters.git_credentials``), and ``GIT_SSH_COMMAND`` names exactly them: no ssh config, no agent,
no other identity, ``StrictHostKeyChecking=yes``. git runs that command through a shell, so it is built
from fixed words and the directory's path, which must be made of safe characters only.

With a token (``kind == "https"``, ``https://`` and ``http://`` URLs) git gets one configuration entry
through its environment (``GIT_CONFIG_COUNT``): an ``Authorization: Basic`` header for the repository's
origin. The token is never in a URL, an argument or a file, so no git message, log line or process list
shows it; it is redacted from git's output all the same (``secrets``).
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from dataclasses import dataclass, field

from berth_builder.domain.source import GitUrl, InvalidInput
from berth_common.catalogue.git_auth import GitAuth, HostKey

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEY_FILE = "id_deploy"
KNOWN_HOSTS = "known_hosts"
_SAFE_DIR = re.compile(r"^/[A-Za-z0-9/_.-]+$")
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class CredentialPlan:
    """``files``: name -> text to write into the credentials directory; ``env``: what git's environment
    gains; ``drop``: inherited variables removed (the ssh agent); ``secrets``: values to redact."""

    files: dict[str, str] = field(default_factory=dict, repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    drop: tuple[str, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)


def check(auth: GitAuth | None, url: GitUrl, field_name: str = "source.auth") -> None:
    """Credentials fit the URL's transport (raises ``InvalidInput`` naming ``field_name``)."""
    if auth is None:
        return
    if auth.kind == "ssh" and url.transport != "ssh":
        raise InvalidInput(field_name, "a deploy key is for ssh:// and user@host:path repository URLs")
    if auth.kind == "https" and url.transport not in ("https", "http"):
        raise InvalidInput(field_name, "an access token is for https:// repository URLs")


def ssh_command(directory: str) -> str:
    """``GIT_SSH_COMMAND`` using only the key and known_hosts in ``directory`` (a path of safe characters)."""
    if not _SAFE_DIR.fullmatch(directory) or ".." in directory.split("/"):
        raise ValueError("the credentials directory's path has characters a shell would interpret")
    options = (
        "BatchMode=yes",
        "ConnectTimeout=30",
        "IdentitiesOnly=yes",
        "IdentityAgent=none",
        f"IdentityFile={directory}/{KEY_FILE}",
        f"UserKnownHostsFile={directory}/{KNOWN_HOSTS}",
        "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=yes",
        "UpdateHostKeys=no",
        "PasswordAuthentication=no",
        "KbdInteractiveAuthentication=no",
    )
    return " ".join(["ssh", "-F", "/dev/null", *(f"-o {o}" for o in options)])


def origin(url: GitUrl) -> str:
    """``scheme://host[:port]`` of an http(s) URL: the only place the token's header is sent."""
    parts = urllib.parse.urlsplit(url.url)
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}"


def plan(auth: GitAuth, url: GitUrl, directory: str) -> CredentialPlan:
    """The files and environment for ``auth`` against ``url`` (``check`` passed); ``directory``: where the
    files go. Raises ``InvalidInput`` for a value that cannot be used (a key or token that does not open)."""
    if auth.kind == "ssh":
        try:
            command = ssh_command(directory)
        except ValueError as exc:
            raise InvalidInput("source.auth", f"{exc} (set BERTH_DATA_DIR to a plain path)") from None
        key = auth.private_key_text().strip() + "\n"
        known = "".join(k.line() + "\n" for k in auth.host_keys)
        return CredentialPlan(
            files={KEY_FILE: key, KNOWN_HOSTS: known},
            env={"GIT_SSH_COMMAND": command},
            drop=("SSH_AUTH_SOCK",),
            secrets=(key.strip(),),
        )
    token = auth.token_text()
    user = auth.username or ""
    if not _HEADER_SAFE.fullmatch(token):
        raise InvalidInput("source.auth.token", "a token is printable ASCII without spaces")
    basic = base64.b64encode(f"{user}:{token}".encode()).decode()
    return CredentialPlan(
        env={
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{origin(url)}/.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        },
        secrets=(token, basic),
    )


def keyscan_argv(host: str, port: int, timeout_s: float) -> tuple[str, ...]:
    """``ssh-keyscan`` of one server (the host checked by the URL rule: no leading '-'; ``--`` anyway)."""
    if not host or host.startswith("-"):
        raise InvalidInput("repository", "no SSH server in the URL")
    return ("ssh-keyscan", "-T", str(max(1, int(timeout_s))), "-p", str(port), "--", host)


def parse_keyscan(output: str, name: str) -> list[HostKey]:
    """The host keys of ``ssh-keyscan`` output, named ``name`` (known_hosts form), each type once."""
    found: dict[str, HostKey] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) != 3 or line.startswith("#") or parts[1] in found:
            continue
        try:
            found[parts[1]] = HostKey(host=name, key_type=parts[1], key=parts[2])  # type: ignore[arg-type]
        except ValueError:
            continue
    return list(found.values())
