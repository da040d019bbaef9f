"""Servers a team adds to Berth: the api asks the scheduler to validate one, the scheduler answers.

``POST /v1/servers`` (and ``POST /v1/servers/{id}/validate``) send ``cmd.server.validate`` with the
server's address, user, sealed private key and pinned host key (none at first contact); the scheduler
connects over SSH, checks what Berth needs, and answers ``evt.server.validated`` with each check and the
host key it saw, which the api shows (and pins at first contact).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from berth_common.catalogue.base import Command, Event, Id, register
from berth_common.values import ServerAddress, SshUser

ServerState = Literal["ready", "unreachable", "invalid"]
DirectoryState = Literal["validating", "ready", "unreachable", "invalid", "draining", "removed"]
SEALED_KEY_AAD = "berth/server/{server_id}/ssh-key"


def sealed_key_aad(server_id: str) -> str:
    """The associated data a server's private key is sealed with (it opens for that server only)."""
    return SEALED_KEY_AAD.format(server_id=server_id)


class ServerCheck(BaseModel):
    """One thing validation looked at: ``reachable``, ``authentication``, ``host_key``, ``docker``,
    ``docker_socket``, ``docker_version`` or ``disk``; ``detail`` says what was found, in words."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=32)
    ok: bool
    detail: str = Field(max_length=2000)


@register
class ValidateServer(Command):
    """Connect to a server over SSH and check it can run Berth's containers: reachable, the key accepted,
    the host key the pinned one (``host_key`` None: first contact, any key is seen and reported), a Docker
    engine whose socket the user may use, its version and architecture, free disk under its data root.
    ``private_key`` is sealed (``sealed_key_aad``). ``attempt`` orders the answers of one server."""

    TYPE = "cmd.server.validate"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    server_id: Id
    team_id: Id
    host: ServerAddress
    port: int = Field(default=22, ge=1, le=65535)
    user: SshUser = "root"
    private_key: str = Field(min_length=1, max_length=20000)
    host_key: str | None = Field(default=None, max_length=16000)
    attempt: int = Field(ge=1)


@register
class ServerValidated(Event):
    """What validating a server found. ``state``: ``ready`` (every check passed), ``unreachable`` (not
    reached or not logged into: a changed host key included, then ``offered_host_key`` is the key the server
    showed, for an admin to accept), ``invalid`` (reached, but it cannot run Berth's containers). ``reason``
    is the first failed check's detail. ``host_key`` is the key the connection accepted (the one to pin at
    first contact)."""

    TYPE = "evt.server.validated"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    server_id: Id
    team_id: Id
    attempt: int = Field(ge=1)
    state: ServerState
    reason: str = Field(default="", max_length=2000)
    checks: list[ServerCheck] = []
    host_key: str | None = Field(default=None, max_length=16000)
    fingerprint: str | None = Field(default=None, max_length=128)
    offered_host_key: str | None = Field(default=None, max_length=16000)
    offered_fingerprint: str | None = Field(default=None, max_length=128)
    docker_version: str | None = Field(default=None, max_length=64)
    architecture: str | None = Field(default=None, max_length=32)
    free_bytes: int | None = Field(default=None, ge=0)


@register
class ServerChanged(Event):
    """A team's server as the api now has it: the directory every service that works on servers keeps
    (``berth_common.fleet``), so none of them reads the api's tables. Sent when a server is added, validated,
    its host key accepted, drained, or removed (``state`` ``removed``: forget it). ``revision`` grows with
    every change of one server; a consumer keeps the highest it saw, so a late redelivery never brings back
    an older state. ``private_key`` is sealed (``sealed_key_aad``); ``host_key`` is the pinned key (None until
    the first contact pinned one: nothing may connect yet)."""

    TYPE = "evt.server.changed"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler", "proxy-sync", "builder", "metrics")
    server_id: Id
    team_id: Id
    name: str = Field(min_length=1, max_length=63)
    host: ServerAddress
    port: int = Field(default=22, ge=1, le=65535)
    user: SshUser = "root"
    private_key: str | None = Field(default=None, max_length=20000)
    host_key: str | None = Field(default=None, max_length=16000)
    state: DirectoryState
    revision: int = Field(ge=1)
