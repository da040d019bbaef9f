"""Bodies of environment variables, environment groups and ``.env`` import."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from berth_api.entrypoints.schemas import Flag
from berth_api.entrypoints.schemas_apps import EnvName, EnvValue, ResourceName

Kind = Literal["runtime", "build"]
MAX_DOTENV = 512 * 1024


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopedVariableIn(Strict):
    name: EnvName
    value: EnvValue | None = Field(default=None, description="Omit (or null) to keep the stored value")
    secret: Flag = Field(default=False, description="Write-only: never returned after it is set, encrypted at rest")
    kind: Kind = Field(default="runtime", description="runtime: in the containers; build: a build arg (git builds)")


class ScopedVariableOut(BaseModel):
    name: str
    value: str | None = Field(description="null for secrets: their value is never returned")
    secret: Flag
    kind: Kind


def _unique(items: list[ScopedVariableIn]) -> list[ScopedVariableIn]:
    seen: set[tuple[str, str]] = set()
    for v in items:
        if (v.kind, v.name) in seen:
            raise ValueError(f"variable names must be unique per kind; repeated: {v.kind} {v.name}")
        seen.add((v.kind, v.name))
    if sum(v.kind == "runtime" for v in items) > 500 or sum(v.kind == "build" for v in items) > 200:
        raise ValueError("at most 500 runtime variables and 200 build args")
    return items


ScopedVariables = Annotated[list[ScopedVariableIn], Field(max_length=700), AfterValidator(_unique)]


class VariablesPut(Strict):
    variables: ScopedVariables = Field(description="The whole set: variables not listed are removed")


class EnvironmentVariables(BaseModel):
    environment_id: str
    variables: list[ScopedVariableOut]


class ApplicationVariables(BaseModel):
    application_id: str
    variables: list[ScopedVariableOut]


class DotenvImportIn(Strict):
    content: str = Field(
        max_length=MAX_DOTENV,
        description="A .env file: KEY=VALUE lines; '#' comments, blank lines and 'export ' are skipped; single "
        'quotes literal, double quotes with \\n \\t \\" \\\\ \\$ escapes; the last of a repeated name wins.',
    )
    kind: Kind = "runtime"
    secret: Flag = Field(default=False, description="Store every imported variable as a secret")
    replace: Flag = Field(default=False, description="Replace the kind's variables (default: merge, the file's win)")


class GroupCreate(Strict):
    name: ResourceName
    redeploy_on_change: Flag = Field(
        default=False, description="Redeploy every attached application with a live version when the variables change"
    )
    variables: ScopedVariables = Field(default_factory=list)


class GroupUpdate(Strict):
    name: ResourceName | None = None
    redeploy_on_change: Flag | None = None


class GroupOut(BaseModel):
    id: str
    name: str
    redeploy_on_change: Flag
    created_at: datetime
    updated_at: datetime
    variables: list[ScopedVariableOut]
    applications: list[str] = Field(description="Ids of the applications it is attached to, in attach order")


class GroupChanged(GroupOut):
    redeployed: list[str] = Field(description="Deployments started by this change (redeploy_on_change)")


class AttachedGroup(BaseModel):
    id: str
    name: str
    redeploy_on_change: Flag
