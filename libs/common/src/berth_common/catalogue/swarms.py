"""Swarms a team makes of its servers: the api asks the scheduler to form (or adopt) one, the scheduler answers.

``POST /v1/swarms`` sends ``cmd.swarm.form`` naming a manager server and worker servers of the team (or
``adopt``: a manager already in a Swarm, whose nodes are taken as they are). The scheduler reaches each
engine through its SSH-forwarded Docker socket, initialises the Swarm on the manager (or finds the one it
is in), reads the join token from the manager, joins the workers and makes the attachable overlay network
Berth's services and the manager's Traefik share; then it answers ``evt.swarm.formed`` with the nodes, or
``evt.swarm.failed`` with what to fix. Forming again is harmless: a node already in the Swarm stays.
Join tokens never travel on the bus: the scheduler reads them from the manager and keeps them sealed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from berth_common.catalogue.base import Command, Event, Id, register

SWARM_NETWORK = "berth"  # the attachable overlay network of a Swarm Berth forms (its Traefik is on it)


class SwarmCommand(Command):
    """Fields every ``cmd.swarm.*`` command has (not a message by itself)."""

    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    swarm_id: Id
    team_id: Id
    attempt: int = Field(ge=1)  # orders the answers of one Swarm


class SwarmEvent(Event):
    """Fields every ``evt.swarm.*`` event has (not a message by itself)."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    swarm_id: Id
    team_id: Id
    attempt: int = Field(ge=1)


class SwarmNode(BaseModel):
    """One node of a Swarm as its manager sees it; ``server_id`` is the Berth server it is (None: a node
    Berth does not manage, in an adopted Swarm)."""

    model_config = ConfigDict(extra="forbid")
    node_id: str = Field(max_length=64)
    server_id: str | None = Field(default=None, max_length=64)
    hostname: str = Field(default="", max_length=255)
    address: str = Field(default="", max_length=64)
    role: Literal["manager", "worker"]
    state: str = Field(default="", max_length=32)  # ready, down, unknown, disconnected
    availability: str = Field(default="", max_length=32)  # active, pause, drain


@register
class FormSwarm(SwarmCommand):
    """Form the Swarm: initialise it on ``manager_server_id`` (or, ``adopt``, use the Swarm that server is
    a manager of), join every server of ``worker_server_ids`` as a worker, and make the attachable overlay
    network ``network``. Idempotent: a node already in this Swarm is left as it is."""

    TYPE = "cmd.swarm.form"
    manager_server_id: Id
    worker_server_ids: list[Id] = Field(default=[], max_length=100)
    adopt: bool = False
    network: str = Field(default=SWARM_NETWORK, pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")


@register
class DissolveSwarm(SwarmCommand):
    """Take the Swarm apart: every worker Berth joined leaves, then the manager (its services go with it).
    Sent only when a person asks for it on removal; otherwise a removed Swarm keeps running."""

    TYPE = "cmd.swarm.dissolve"
    manager_server_id: Id
    worker_server_ids: list[Id] = Field(default=[], max_length=100)


@register
class SwarmFormed(SwarmEvent):
    """The Swarm runs with ``nodes`` (the manager's view); ``cluster_id`` is Docker's id of the Swarm."""

    TYPE = "evt.swarm.formed"
    cluster_id: str = Field(max_length=64)
    manager_node_id: str = Field(max_length=64)
    network: str = Field(max_length=63)
    nodes: list[SwarmNode] = []


@register
class SwarmFailed(SwarmEvent):
    """The Swarm could not be formed; ``reason`` is for a person (which server, what to fix). Nodes that
    joined stay joined: forming again continues from there."""

    TYPE = "evt.swarm.failed"
    reason: str = Field(max_length=2000)
