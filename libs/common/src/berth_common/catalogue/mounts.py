"""Storage of web and worker services: named volumes, host bind mounts and the deployment strategy they
call for (part of the application's spec, ``catalogue/specs.py``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from berth_common.catalogue.spec_base import Spec
from berth_common.values import Slug

__all__ = [
    "FILES_HOLD",
    "MAX_MOUNT_PATH",
    "MAX_VOLUME_MB",
    "BindMount",
    "Binds",
    "MountPath",
    "Mounted",
    "Strategy",
    "VolumeMount",
    "Volumes",
    "docker_volume_name",
    "mount_path",
    "single_writer_refusal",
]

# --- volumes ---------------------------------------------------------------------------------------
# A named volume is made on every server that runs the service (``berth-<application id>-<name>``, labelled
# ``berth.team``, ``berth.app``, ``berth.volume``) and outlives deployments, rollbacks and scaling; only an
# explicit removal deletes it. A host bind mount names a directory of the server (the api accepts only the
# paths its administrator allows). A single-writer volume is never mounted by two running containers: its
# service runs one replica and deploys with ``strategy: recreate`` (the old replica stops first).

MAX_MOUNT_PATH = 4096
MAX_VOLUME_MB = 16 * 1024 * 1024  # a size hint of at most 16 TiB
Strategy = Literal["rolling", "recreate"]
FILES_HOLD = "/.berth-files"  # where a replica mounts its read-only files volume whole (the scheduler's)


def mount_path(value: str) -> str:
    """An absolute path without ``..``, ``:`` or control characters, not ``/`` itself, no trailing ``/``:
    safe as a Docker mount's ``Target`` or ``Source``; never ``FILES_HOLD`` or under it."""
    if not value.startswith("/"):
        raise ValueError("a mount path must be absolute (start with /)")
    if value == "/":
        raise ValueError("a mount path cannot be / itself")
    if ":" in value:
        raise ValueError("a mount path cannot contain ':'")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("a mount path cannot contain control characters")
    parts = value.split("/")[1:]
    if any(p == ".." for p in parts):
        raise ValueError("a mount path cannot contain '..'")
    if any(p in ("", ".") for p in parts):
        raise ValueError("a mount path cannot contain '//', '/./' or end with '/'")
    if value == FILES_HOLD or value.startswith(FILES_HOLD + "/"):
        raise ValueError(f"a mount path cannot be {FILES_HOLD} or under it: Berth mounts read-only files there")
    return value


MountPath = Annotated[str, Field(min_length=2, max_length=MAX_MOUNT_PATH), AfterValidator(mount_path)]


class VolumeMount(Spec):
    """A named volume mounted at ``path``; ``size_mb``: a hint shown with it (Docker's local driver does not
    limit a volume's size); ``single_writer``: at most one container may run with it (see above);
    ``read_only``: mounted read-only (a service that reads what another writes)."""

    name: Slug
    path: MountPath
    size_mb: int | None = Field(default=None, ge=1, le=MAX_VOLUME_MB, exclude_if=lambda v: v is None)
    single_writer: bool = Field(default=False, exclude_if=lambda v: not v)
    read_only: bool = Field(default=False, exclude_if=lambda v: not v)  # compose's ``:ro``


class BindMount(Spec):
    """A directory of the server (``host_path``) mounted at ``path``, read-only unless ``read_only`` is
    false."""

    host_path: MountPath
    path: MountPath
    read_only: bool = True


def docker_volume_name(application_id: str, volume: str) -> str:
    """``berth-<application id>-<volume name>``: the Docker volume of an application's named volume."""
    return f"berth-{application_id}-{volume}"


def single_writer_refusal(single_writers: list[str], replicas: int, strategy: str) -> tuple[str, str] | None:
    """(the field to change: ``replicas`` or ``strategy``, why) when a service with the single-writer volumes
    ``single_writers`` cannot run as configured; None when it can. The api answers with these words."""
    if not single_writers:
        return None
    which = ", ".join(single_writers)
    if replicas > 1:
        return "replicas", (
            f"the single-writer volume(s) {which} can be mounted by one container only: run 1 replica "
            "with strategy recreate, or make the volume(s) not single-writer"
        )
    if strategy != "recreate":
        return "strategy", (
            f"the single-writer volume(s) {which} need strategy recreate: rolling (the default) starts the new "
            "replica while the old one still writes, so two containers would write at once; recreate stops the "
            "old replica first (a short gap, reported as expected downtime). Keep rolling only for volumes "
            "that are not single-writer"
        )
    return None


Volumes = Annotated[list[VolumeMount], Field(max_length=16)]
Binds = Annotated[list[BindMount], Field(max_length=16)]


class Mounted(Spec):
    """What web and worker services share about storage: named volumes, bind mounts and the strategy, each
    left out of a dump when unset (so a snapshot without them dumps as before)."""

    volumes: Volumes = Field(default_factory=list, exclude_if=lambda v: not v)
    binds: Binds = Field(default_factory=list, exclude_if=lambda v: not v)
    strategy: Strategy = Field(default="rolling", exclude_if=lambda v: v == "rolling")

    @model_validator(mode="after")
    def _mounts(self) -> Mounted:
        # one volume may be mounted at two paths (compose's ``data:/a`` and ``data:/b``): each entry is a mount
        paths = [v.path for v in self.volumes] + [b.path for b in self.binds]
        if len(set(paths)) != len(paths):
            raise ValueError("two mounts of a service cannot share a path")
        writers = list(dict.fromkeys(v.name for v in self.volumes if v.single_writer))
        refusal = single_writer_refusal(writers, int(getattr(self, "replicas", 1)), self.strategy)
        if refusal is not None:
            raise ValueError(refusal[1])
        return self
