"""The documents and pages that describe the api: the AsyncAPI document of the bus, the API reference at
``/docs`` (Swagger UI over ``/openapi.json``) and the event catalogue at ``/events``.

Public, like ``/openapi.json``. The pages' code (:mod:`berth_api.docs_pages`) and the AsyncAPI generator
are imported on the first request that needs them, so an api nobody reads the docs of never loads them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request, Response

from berth_api.entrypoints.auth import anonymous
from berth_api.entrypoints.state import api_state

router = APIRouter()


@lru_cache(maxsize=1)
def bus_document(nats_url: str) -> dict[str, Any]:
    """The AsyncAPI document, made on the first request (a few MB of schemas) and then kept."""
    from berth_common.asyncapi import asyncapi_document

    return asyncapi_document(nats_url)


@router.get(
    "/asyncapi.json",
    operation_id="get_asyncapi_document",
    tags=["documents"],
    summary="AsyncAPI 3.0 document of the bus",
    dependencies=[anonymous()],
)
async def asyncapi(request: Request) -> dict[str, Any]:
    return bus_document(api_state(request).settings.nats_url)


@router.get("/docs", include_in_schema=False, dependencies=[anonymous()])
async def reference_page(request: Request) -> Response:
    from berth_api.docs_pages import reference

    return reference.page(request.scope.get("root_path", ""))


@router.get("/docs/assets/{name}", include_in_schema=False, dependencies=[anonymous()])
async def reference_asset(name: str) -> Response:
    from berth_api.docs_pages import reference

    return reference.asset(name)


@router.get("/events", include_in_schema=False, dependencies=[anonymous()])
async def events_page(request: Request) -> Response:
    from berth_api.docs_pages import events

    nats_url = api_state(request).settings.nats_url
    return events.page(bus_document(nats_url), request.scope.get("root_path", ""))
