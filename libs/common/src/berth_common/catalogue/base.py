"""The base of the catalogue: message kinds, the registry, and ``register``."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    """Base for every catalogue entry."""

    # Validators are built on first use: 1.7 MB less per process (most services use a few of the messages).
    model_config = ConfigDict(extra="forbid", defer_build=True)

    TYPE: ClassVar[str] = ""
    KIND: ClassVar[Literal["command", "event", "query", "reply"]] = "event"
    SCHEMA_VERSION: ClassVar[int] = 1
    PRODUCERS: ClassVar[tuple[str, ...]] = ()
    CONSUMERS: ClassVar[tuple[str, ...]] = ()
    # For queries: the model of the reply (documented in the AsyncAPI document).
    REPLY: ClassVar[type[BaseModel] | None] = None
    # The consumer checks the shared value rules of its fields itself and answers a bad value with its own
    # failure event: it parses a received message with ``berth_common.values.RECEIVED`` (see there).
    CONSUMER_CHECKS_VALUES: ClassVar[bool] = False


class Command(Message):
    KIND: ClassVar[Literal["command", "event", "query", "reply"]] = "command"


class Event(Message):
    KIND: ClassVar[Literal["command", "event", "query", "reply"]] = "event"


class Query(Message):
    KIND: ClassVar[Literal["command", "event", "query", "reply"]] = "query"


REGISTRY: dict[str, type[Message]] = {}


def register(cls: type[Message]) -> type[Message]:
    if not cls.TYPE:
        raise ValueError(f"{cls.__name__} has no TYPE")
    prefix = {"command": "cmd.", "event": "evt.", "query": "rpc.", "reply": "rpc."}[cls.KIND]
    if not cls.TYPE.startswith(prefix):
        raise ValueError(f"{cls.__name__}: a {cls.KIND} type must start with {prefix!r}")
    if cls.TYPE in REGISTRY:
        raise ValueError(f"duplicate message type {cls.TYPE}")
    for name, field in cls.model_fields.items():
        if get_origin(field.default) is Annotated:  # ``x: str = Id`` would make a type the default value
            raise TypeError(f"{cls.__name__}.{name}: a type is its default; annotate it instead (``{name}: Id``)")
    REGISTRY[cls.TYPE] = cls
    return cls


def model_for(type_: str) -> type[Message]:
    try:
        return REGISTRY[type_]
    except KeyError:
        raise KeyError(f"unknown message type {type_!r}") from None


Id = Annotated[str, Field(min_length=1, max_length=64)]
"""The id of a team, an application, a deployment, a channel, ...: 1 to 64 characters."""


class TeamQuery(Query):
    """Fields every query about a team's own items has (not a message by itself): the service answers for
    ``team_id`` only, so another team's item is not found, exactly like a missing one."""

    team_id: Id


class Problem(BaseModel):
    """Why a query was refused (RFC 9457 shaped); ``status`` is the HTTP status the api should answer with.

    A service's replies carry it instead of raising, so the api maps them to problem+json as they are."""

    status: int
    type: str  # a stable slug: not-found, conflict, invalid
    title: str
    field: str | None = None  # dotted path of the offending request field
    detail: str = ""
