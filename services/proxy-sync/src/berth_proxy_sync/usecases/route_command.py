"""A route command as a batch carries it: the message, its delivery, its input checked once (a bad one is
kept, to be answered as failed), the DNS checks of its ACME hosts, and the future its handler waits on."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal

from berth_common.bus.consumer import Delivery
from berth_common.catalogue import ApplyRoutes, RemoveRoute
from berth_proxy_sync.domain.routes import Route, RouteError, check_route_id
from berth_proxy_sync.usecases.https import HostCheck

Operation = Literal["apply", "remove"]


@dataclass(eq=False)
class Command:
    """A route command waiting for its batch; ``done`` is resolved once it is answered (or raises when
    the batch's transaction failed)."""

    msg: ApplyRoutes | RemoveRoute
    delivery: Delivery
    seq: int
    route: Route | None = None
    error: str | None = None
    arrived: float = field(default_factory=time.monotonic)  # when its handler handed it over
    checks: dict[str, HostCheck] = field(default_factory=dict)  # the DNS check of its ACME hosts
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @classmethod
    def of(
        cls, msg: ApplyRoutes | RemoveRoute, delivery: Delivery, seq: int, checks: dict[str, HostCheck] | None = None
    ) -> Command:
        """The command with its input checked (a bad one is kept, to be answered as failed)."""
        cmd = cls(msg, delivery, seq, checks=checks or {})
        try:
            if isinstance(msg, ApplyRoutes):
                cmd.route = Route.create(
                    msg.route_id,
                    msg.hosts,
                    msg.upstreams,
                    msg.entry_point,
                    msg.generation,
                    tls=msg.tls,
                    buffering=msg.buffer_requests,
                    path=msg.path_prefix,
                )
            else:
                check_route_id(msg.route_id)
        except RouteError as exc:
            cmd.error = str(exc)
        return cmd

    @property
    def operation(self) -> Operation:
        return "apply" if isinstance(self.msg, ApplyRoutes) else "remove"

    @property
    def route_id(self) -> str:
        return self.route.route_id if self.route else self.msg.route_id

    @property
    def hosts(self) -> tuple[str, ...]:
        """What the command claims: its route's hosts, each under its path when it has one (``Route.claims``)."""
        return self.route.claims if self.route else ()

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def generation(self) -> int:
        return self.msg.generation
