"""Credentials for a private git repository, as the builder receives them with a source or a file query.

Two kinds, chosen by the repository URL's transport:

- ``ssh`` (``ssh://`` and scp-like ``user@host:path``): the application's deploy key (an OpenSSH ed25519
  private key) and the forge's pinned host keys; the builder clones with exactly that key and refuses a
  server whose key is not pinned (``StrictHostKeyChecking=yes``).
- ``https`` (``https://`` and ``http://``): a user name and an access token, sent by the builder as an
  ``Authorization`` header for the repository's origin only; never written into a URL.

The private key and the token are sealed whenever serialised to JSON (``berth_common.sealing``, bound to
their kind), print as ``**********`` and are opened by :meth:`GitAuth.private_key_text` /
:meth:`GitAuth.token_text` at the point of use. Host keys are public and travel in the clear.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import Field, SecretStr, field_serializer, model_validator

from berth_common import sealing
from berth_common.catalogue.spec_base import Spec

__all__ = ["HOST_KEY_TYPES", "GitAuth", "HostKey", "known_hosts_name", "ssh_endpoint"]

HostKeyType = Literal[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
]
HOST_KEY_TYPES: tuple[str, ...] = get_args(HostKeyType)
MAX_SEALED_KEY = sealing.sealed_length(16384)
# A host as it appears in a known_hosts line: a name or address, ``[host]:port`` for another port than 22.
KnownHostName = Annotated[
    str, Field(min_length=1, max_length=300, pattern=r"^(\[[A-Za-z0-9.:_-]+\]:[0-9]{1,5}|[A-Za-z0-9.:_-]+)$")
]
UserName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._@+-]+$")]
_SCP = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^@/:\[\]]+|\[[0-9A-Fa-f:.]+\]):")


class HostKey(Spec):
    """One public host key of a git server, as a known_hosts line gives it: ``host key_type key``."""

    host: KnownHostName
    key_type: HostKeyType
    key: str = Field(min_length=16, max_length=4096, pattern=r"^[A-Za-z0-9+/]+={0,3}$")

    def line(self) -> str:
        """The known_hosts line (every part checked by its pattern: no space, no newline, no marker)."""
        return f"{self.host} {self.key_type} {self.key}"


class GitAuth(Spec):
    """How the builder authenticates to a private repository (see the module's docstring).

    ``kind="ssh"``: ``private_key`` and ``host_keys`` (at least one); ``kind="https"``: ``username`` and
    ``token``."""

    PURPOSE: ClassVar[str] = "git"

    kind: Literal["ssh", "https"]
    private_key: SecretStr = Field(default=SecretStr(""), max_length=MAX_SEALED_KEY, exclude_if=lambda v: not v)
    host_keys: list[HostKey] = Field(default_factory=list, max_length=20, exclude_if=lambda v: not v)
    username: UserName | None = Field(default=None, exclude_if=lambda v: v is None)
    token: SecretStr = Field(default=SecretStr(""), max_length=MAX_SEALED_KEY, exclude_if=lambda v: not v)

    @model_validator(mode="after")
    def _complete(self) -> GitAuth:
        if self.kind == "ssh" and not (self.private_key.get_secret_value() and self.host_keys):
            raise ValueError("ssh credentials need a private key and at least one pinned host key")
        if self.kind == "https" and not (self.token.get_secret_value() and self.username):
            raise ValueError("https credentials need a user name and a token")
        return self

    def _aad(self, field: str) -> str:
        return f"berth/{self.PURPOSE}/{self.kind}/{field}"

    def _open(self, value: SecretStr, field: str) -> str:
        raw = value.get_secret_value()
        return sealing.unseal(raw, self._aad(field)) if sealing.is_sealed(raw) else raw

    def private_key_text(self) -> str:
        """The private key in the clear, for the point of use only (raises ``sealing.UnsealError``)."""
        return self._open(self.private_key, "private_key")

    def token_text(self) -> str:
        """The token in the clear, for the point of use only (raises ``sealing.UnsealError``)."""
        return self._open(self.token, "token")

    def _seal(self, value: SecretStr, field: str) -> str:
        raw = value.get_secret_value()
        if not raw:
            return raw
        aad = self._aad(field)
        return sealing.reseal(raw, aad) if sealing.is_sealed(raw) else sealing.seal(raw, aad)

    @field_serializer("private_key", when_used="json")
    def _key_sealed_on_the_wire(self, value: SecretStr) -> str:
        return self._seal(value, "private_key")

    @field_serializer("token", when_used="json")
    def _token_sealed_on_the_wire(self, value: SecretStr) -> str:
        return self._seal(value, "token")


def ssh_endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) of an ``ssh://`` or scp-like repository URL (brackets kept off an IPv6 address); None
    for any other URL."""
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() not in ("ssh", "git+ssh", "ssh+git"):
            return None
        return (parts.hostname or "", parts.port or 22)
    m = _SCP.match(url)
    if m is None:
        return None
    return (m.group("host").strip("[]"), 22)


def known_hosts_name(host: str, port: int) -> str:
    """How known_hosts names ``host`` at ``port``: ``host`` on 22, else ``[host]:port``."""
    return host if port == 22 else f"[{host}]:{port}"
