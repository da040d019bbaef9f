"""What routes reach through ``request.app.state``: the running service's context, settings and use-case deps."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from berth_api.adapters.identity import token_lookup
from berth_api.adapters.readpool import BatchedLookup, ReadPool
from berth_api.adapters.secretbox import SecretBox
from berth_api.domain.ratelimit import FailureLimiter
from berth_api.entrypoints.item_cache import ItemCache
from berth_api.entrypoints.page_cache import PageCache
from berth_api.settings import ApiSettings
from berth_api.usecases import Deps
from berth_common.runtime import Context

SECRET_BOX = "secret_box"  # ctx.extra key, set by bootstrap.wire


@dataclass
class ApiState:
    settings: ApiSettings
    ctx: Context | None  # None only for an app built for introspection (OpenAPI export, route checks)
    _deps: Deps | None = field(default=None, repr=False)
    limiter: FailureLimiter = field(init=False, repr=False)
    webhook_limiter: FailureLimiter = field(init=False, repr=False)  # unverified deliveries: address, webhook
    read_pool: ReadPool = field(init=False, repr=False)  # the request path's statements (no session)
    tokens: BatchedLookup = field(init=False, repr=False)  # the token checks
    pages: PageCache = field(init=False, repr=False)  # serialised pages of the application list
    items: ItemCache = field(init=False, repr=False)  # ... and their items, by the digest of each row

    def __post_init__(self) -> None:
        s = self.settings
        self.limiter = FailureLimiter(s.auth_failures_per_address, s.auth_failures_per_prefix, s.auth_failure_window_s)
        self.webhook_limiter = FailureLimiter(
            s.webhook_failures_per_address, s.webhook_failures_per_webhook, s.webhook_failure_window_s
        )
        self.read_pool = ReadPool(s.database_url.get_secret_value(), s.schema_name, max_size=s.read_pool_size)
        self.tokens = token_lookup(self.read_pool)
        self.pages = PageCache(s.list_cache_bytes)
        self.items = ItemCache(s.list_cache_bytes)

    def context(self) -> Context:
        if self.ctx is None:
            raise RuntimeError("the api app was built without a running service context")
        return self.ctx

    def deps(self) -> Deps:
        if self._deps is None:
            ctx = self.context()
            box = ctx.extra.get(SECRET_BOX)
            if not isinstance(box, SecretBox):
                raise RuntimeError("the api's secret box is not wired")
            self._deps = Deps(settings=self.settings, sessionmaker=ctx.sessionmaker, bus=ctx.bus, box=box)
        return self._deps


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def deps(request: Request) -> Deps:
    return api_state(request).deps()
