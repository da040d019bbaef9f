"""The application's pre-deploy job as the api takes and shows it (``docs/runs.md``, "The pre-deploy job")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from berth_common.catalogue import PRE_DEPLOY_DEFAULT_TIMEOUT_S, RunArgv, RunTimeoutS
from berth_common.values import Slug

PRE_DEPLOY = (
    "A command run once from the new image before the new version starts (database migrations, say); "
    "it must exit 0, else the deployment fails and the live version keeps serving. Null on an update: none"
)


class PreDeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: RunArgv = Field(
        description="The command as argv (never given to a shell): 1 to 64 arguments, each at most 4096 characters",
        examples=[["python", "manage.py", "migrate"]],
    )
    service: Slug | None = Field(
        default=None,
        description="Whose environment, volumes and server it takes (default: the first web, else worker "
        "service; a compose application: one of its compose services)",
        exclude_if=lambda v: v is None,
    )
    timeout_s: RunTimeoutS = Field(default=PRE_DEPLOY_DEFAULT_TIMEOUT_S, description="Killed after this many seconds")


def pre_deploy_config(body: PreDeployIn | None) -> dict[str, object] | None:
    """The job as the application's configuration stores it (None: none)."""
    return None if body is None else body.model_dump(mode="json")
