"""Bodies of compose applications: the compose file (inline, or a path in the git repository), which
service and port get which host, and the translation shown on the application."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from berth_api.domain import names
from berth_api.entrypoints.schemas import given

MAX_COMPOSE = 256 * 1024
RelPath = Annotated[str, Field(min_length=1, max_length=names.MAX_PATH), AfterValidator(names.relative_path)]
Host = Annotated[str, Field(min_length=1, max_length=names.MAX_HOST), AfterValidator(names.domain_host)]


class ComposeIn(BaseModel):
    """A compose file: ``inline`` (its YAML text) or ``path`` (relative to the git repository's root)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [given(("inline",), absent=("path",)), given(("path",), absent=("inline",))]},
    )

    inline: str | None = Field(default=None, min_length=1, max_length=MAX_COMPOSE, exclude_if=lambda v: v is None)
    path: RelPath | None = Field(
        default=None,
        description="A compose file of the application's git repository (read by the builder: not yet)",
        exclude_if=lambda v: v is None,
    )

    @model_validator(mode="after")
    def _one(self) -> ComposeIn:
        if (self.inline is None) == (self.path is None):
            raise ValueError("give inline or path, not both")
        return self


class HostMapIn(BaseModel):
    """A host for a compose service's port; no ``host``: the generated host only."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=64, description="The service's name in the compose file")
    port: int = Field(ge=1, le=65535, description="The port the container listens on")
    host: Host | None = Field(default=None, exclude_if=lambda v: v is None)


HostMaps = Annotated[list[HostMapIn], Field(max_length=100)]
HOSTS = (
    "Which compose service and port get which host; empty: the first service in the file with a published "
    "or exposed port gets the generated host at its first port. Each service named is a web service"
)


class ComposeOut(BaseModel):
    """The compose file as given, its hosts, and what Berth will run: the translation of the file."""

    inline: str | None = Field(default=None, exclude_if=lambda v: v is None)
    path: str | None = Field(default=None, exclude_if=lambda v: v is None)
    hosts: list[HostMapIn]
    translated: dict[str, Any] | None = Field(
        description="Each service as Berth runs it (image or build, command, entrypoint, environment, ports, "
        "volumes, health, depends_on, limits, replicas, restart), the start order, and notes: every key "
        "accepted but not carried"
    )


Body = TypeVar("Body", bound=BaseModel)


def services_or_compose(body: Body) -> Body:
    """An application is services (with a source) or a compose file (with hosts), never both."""
    services, compose = getattr(body, "services", None), getattr(body, "compose", None)
    if (services is None) == (compose is None):
        raise ValueError("give services or compose, not both")
    if services is not None and getattr(body, "source", None) is None:
        raise ValueError("source is required with services")
    if getattr(body, "hosts", None) and compose is None:
        raise ValueError("hosts are given with compose (a service's domains otherwise)")
    return body
