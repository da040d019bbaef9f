"""What routes reach through ``request.app.state``: the running service's context and settings."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from berth_api.settings import ApiSettings
from berth_common.runtime import Context


@dataclass
class ApiState:
    settings: ApiSettings
    ctx: Context | None  # None only for an app built for introspection (OpenAPI export, route checks)

    def context(self) -> Context:
        if self.ctx is None:
            raise RuntimeError("the api app was built without a running service context")
        return self.ctx


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state
