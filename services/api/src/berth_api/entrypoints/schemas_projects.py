"""Bodies and answers of the project and environment routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from berth_api.domain import names
from berth_api.entrypoints.schemas_apps import ResourceName, Slug, Strict

Description = Annotated[
    str,
    Field(max_length=500, json_schema_extra={"pattern": names.DESCRIPTION_PATTERN}),
    AfterValidator(names.description),
]


class ProjectCreate(Strict):
    name: ResourceName
    description: Description = ""


class ProjectUpdate(Strict):
    name: ResourceName | None = None
    description: Description | None = None


class EnvironmentCreate(Strict):
    name: Slug = Field(description="1-32 lowercase letters, digits or '-' (part of generated host names)")


class EnvironmentOut(BaseModel):
    id: str
    project_id: str
    name: str
    created_at: datetime


class ProjectOut(BaseModel):
    id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    environments: list[EnvironmentOut]
