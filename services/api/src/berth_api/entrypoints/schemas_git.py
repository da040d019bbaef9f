"""Bodies of private repositories: an application's deploy key (public key and pinned host keys shown,
the private key never), its access token (write-only), host keys given or accepted."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

FINGERPRINT_PATTERN = r"^SHA256:[A-Za-z0-9+/]{43}$"


class HostKeyOut(BaseModel):
    host: str = Field(description="The server as known_hosts names it: host, or [host]:port")
    key_type: str
    key: str
    fingerprint: str = Field(description="SHA-256, as ssh-keygen -l shows it")
    source: Literal["first-contact", "given", "accepted"] = Field(
        description="first-contact: read from the server the first time; given: by a user; accepted: a changed "
        "key an admin accepted"
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
    token: SecretStr = Field(min_length=1, max_length=4096, description="Write-only: sealed, never shown again")


class TokenOut(BaseModel):
    application_id: str
    username: str
    created_at: datetime
    rotated_at: datetime | None = None
