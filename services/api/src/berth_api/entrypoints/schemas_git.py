"""Bodies of private repositories: an application's deploy key (public key and pinned host keys shown,
the private key never), its access token (write-only), host keys given or accepted."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

FINGERPRINT_PATTERN = r"^SHA256:[A-Za-z0-9+/]{43}$"
TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # it travels in an Authorization header


class HostKeyOut(BaseModel):
    host: str = Field(description="The server as known_hosts names it: host, or [host]:port")
    key_type: str
    key: str
    fingerprint: str = Field(description="SHA-256, as ssh-keygen -l shows it")
    source: Literal["first-contact", "given", "accepted", "offered"] = Field(
        description="first-contact: read from the server the first time; given: by a user; accepted: a changed "
        "key an admin accepted; offered: presented by the server instead of the pinned keys, not trusted"
    )
    pinned_at: datetime


class DeployKeyOut(BaseModel):
    application_id: str
    public_key: str = Field(description="Add it to the forge as a read-only deploy key")
    fingerprint: str
    created_at: datetime
    rotated_at: datetime | None = None
    repository: str | None = Field(default=None, description="The application's repository URL")
    ssh_server: str | None = Field(default=None, description="Its SSH server (None: not an ssh URL)")
    host_keys: list[HostKeyOut] = Field(
        default_factory=list, description="Pinned for the server: a clone is refused if it presents another key"
    )
    offered_host_keys: list[HostKeyOut] = Field(
        default_factory=list,
        description="Presented by the server at the last scan instead of the pinned keys: an admin accepts them by "
        "fingerprint if the forge really changed its key",
    )


class DeployKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host_keys: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="The git server's public host keys ('ssh-ed25519 AAAA...') to pin with the new key, when "
        "none is pinned for that server yet (else an admin replaces them: PUT .../deploy-key/host-keys)",
    )


class HostKeysIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host_keys: list[str] = Field(
        min_length=1,
        max_length=20,
        description="The server's public host keys as the forge publishes them ('ssh-ed25519 AAAA...'), "
        "pinned for the repository's server in place of what was pinned",
    )


class AcceptHostKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprint: str = Field(pattern=FINGERPRINT_PATTERN, description="The new key's SHA-256 fingerprint")


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(
        default="x-access-token",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9._@+-]+$",
        description="The user name the forge expects with a token (GitHub: x-access-token, GitLab: oauth2 or the "
        "deploy token's user, Bitbucket: x-token-auth)",
    )
    token: SecretStr = Field(
        min_length=1,
        max_length=4096,
        description="Write-only: sealed, never shown again",
        json_schema_extra={"pattern": "^[!-~]+$"},  # printable ASCII without spaces (TOKEN_CHARS)
    )

    @field_validator("token")
    @classmethod
    def _header_safe(cls, value: SecretStr) -> SecretStr:
        if not TOKEN_CHARS.fullmatch(value.get_secret_value()):
            raise ValueError("a token is printable ASCII without spaces")
        return value


class GitTokenOut(BaseModel):
    """An application's git token: who it authenticates as and when it was set (never the token)."""

    application_id: str
    username: str
    created_at: datetime
    rotated_at: datetime | None = None


class GitAccessOut(BaseModel):
    application_id: str
    repository: str | None = Field(description="The application's repository URL (None: an image source)")
    uses: Literal["deploy_key", "token"] | None = Field(
        description="What a clone of that URL uses: the deploy key (ssh:// and user@host:path), the token "
        "(https://), or nothing (git://, an image source)"
    )
    deploy_key: DeployKeyOut | None = None
    token: GitTokenOut | None = None


class DeployKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    private_key: SecretStr = Field(
        min_length=1,
        max_length=16384,
        description="Write-only: a private key (OpenSSH or PEM; ed25519, ECDSA or RSA; no passphrase) whose "
        "public key the forge has as a deploy key; sealed, never shown again",
    )
    host_keys: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="The server's public host keys as the forge publishes them; none: pinned at first contact",
    )


class GitAccessIn(BaseModel):
    """A credential given with a new application: one of a deploy key or a token."""

    model_config = ConfigDict(extra="forbid")

    deploy_key: DeployKeyIn | None = Field(default=None, description="For an ssh:// or scp-style repository URL")
    token: TokenIn | None = Field(default=None, description="For an https:// repository URL")

    @model_validator(mode="after")
    def _one(self) -> GitAccessIn:
        if (self.deploy_key is None) == (self.token is None):
            raise ValueError("give one of deploy_key or token")
        return self
