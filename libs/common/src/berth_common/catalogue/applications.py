"""Applications: taking a deployed application down (the api asks, the scheduler does it and answers).

``DELETE /v1/applications/{id}`` of an application that has deployments sends ``cmd.application.remove``;
the api keeps the application (state ``removing``, refusing deploys and changes) until the scheduler answers
``evt.application.removed`` (then it deletes its rows) or ``evt.application.removal_failed`` (then the
application is ``active`` again, with the reason); ``evt.application.removal_progressed`` reports each
phase on the way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from berth_common.catalogue.base import Command, Event, Id, register

# --- applications ----------------------------------------------------------------------------------


@register
class RemoveApplication(Command):
    """Take an application down, in this order: its queued deployments are cancelled and one not yet serving
    traffic is cancelled (a deployment past its switch finishes first); its routes are removed and Traefik
    confirms the hosts are gone; in-flight requests drain (``drain_grace_s``, default the scheduler's
    setting); every container of the application is stopped (SIGTERM, then SIGKILL after the stop timeout)
    and removed; the images built for it are removed. Persisted and resumed after a restart; a redelivered
    or repeated command has no second effect. An application the scheduler never saw is removed at once."""

    TYPE = "cmd.application.remove"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    application_id: Id
    team_id: Id
    drain_grace_s: float | None = Field(default=None, ge=0, le=3600)


RemovalPhase = Literal["routes", "restoring", "draining", "stopping", "images"]


class ApplicationRemovalEvent(Event):
    """Fields every ``evt.application.*`` event has (not a message by itself): the scheduler tells the api
    about the removal of one application."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    application_id: str
    team_id: str


@register
class ApplicationRemovalProgressed(ApplicationRemovalEvent):
    """The removal entered ``phase``: ``routes`` (Traefik is removing the hosts), ``draining`` (no host
    routes to it any more; in-flight requests finish), ``stopping`` (its containers get SIGTERM, then
    SIGKILL), ``images`` (its built images are removed), or ``restoring`` (a route removal was refused:
    the routes removed are put back, then ``removal_failed``). ``version`` grows with every step of every
    attempt, so a consumer keeps the highest it saw."""

    TYPE = "evt.application.removal_progressed"
    phase: RemovalPhase
    version: int = Field(ge=0)
    routes_removed: int = 0
    containers_removed: int = 0


@register
class ApplicationRemoved(ApplicationRemovalEvent):
    """No route, container or image of the application is left; its host names are free."""

    TYPE = "evt.application.removed"
    routes_removed: int = 0
    containers_removed: int = 0
    images_removed: int = 0
    duration_s: float = 0.0


@register
class ApplicationRemovalFailed(ApplicationRemovalEvent):
    """The application could not be taken down (``reason`` says what to fix); what is still running keeps
    running and routed as before the command, and a new ``cmd.application.remove`` tries again."""

    TYPE = "evt.application.removal_failed"
    reason: str = Field(max_length=4000)
