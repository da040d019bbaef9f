"""The application's files on a Swarm, as data: each file a service mounts becomes a Swarm secret, mounted
into every task at the file's path.

On a single server the scheduler writes the files into each container before it starts
(``domain/app_files.py``); Swarm creates its tasks' containers itself, so there is no moment to do that.
A Swarm secret is kept encrypted in the managers' raft log and given to a task as a file on an in-memory
mount, only on the nodes that run the task: a file may hold rendered secrets (a template's generated
passwords), so a secret, not a config. Its ``File`` carries the path in the container (an absolute path),
owner root and the file's mode; the mount is read-only.

A secret cannot change, so its name carries the digest of its path, mode and content: the same file is the
same secret (a rollout run again finds it), and a changed file is a new secret, which makes a new service
version (its spec names other secrets). Secrets no service uses any more are removed after a rollout
(``unused``); Swarm refuses to remove one a service still names.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from berth_common import labels
from berth_common.catalogue import ApplicationSpec, WebService, WorkerService
from berth_scheduler.domain import app_files

FILE_LABEL = "berth.file"  # on a file's secret: the file's path in the container
_NAME = re.compile(r"[a-z0-9]{1,64}")


@dataclass(frozen=True)
class FileSecret:
    """One placed file as a Swarm secret: ``name`` (digest-named), ``target`` (its path in the task's
    containers), ``mode``, and ``body`` (``POST /secrets/create``: holds the content, never printed)."""

    name: str
    target: str
    mode: int
    body: dict[str, Any] = field(repr=False)


def secret_name(application_id: str, target: str, mode: int, content: bytes) -> str:
    """``berth-file-<application>-<digest>``: at most 64 characters, as Swarm allows."""
    if not _NAME.fullmatch(application_id):
        raise ValueError(f"not an application id: {application_id!r}")
    h = hashlib.sha256(f"{target}\0{mode:o}\0{len(content)}\0".encode())
    h.update(content)
    return f"berth-file-{application_id[:16]}-{h.hexdigest()[:32]}"


def file_secrets(
    application_id: str, team_id: str, spec: ApplicationSpec, service: WebService | WorkerService
) -> list[FileSecret]:
    """The secrets of the files ``service`` mounts, in the mounts' order (a later mount of a path wins)."""
    out = []
    for target, f in app_files.placed(spec, service):
        content = f.reveal().encode()
        name = secret_name(application_id, target, f.mode, content)
        body = {
            "Name": name,
            "Labels": {
                labels.TEAM: team_id,
                labels.APP: application_id,
                labels.SERVICE: service.name,
                labels.MANAGED: "true",
                FILE_LABEL: target,
            },
            "Data": base64.b64encode(content).decode(),
        }
        out.append(FileSecret(name, target, f.mode, body))
    return out


def secret_refs(secrets: Iterable[FileSecret], ids: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ``ContainerSpec.Secrets`` that mount ``secrets`` (their ids in ``ids``, by name) at their paths."""
    return [
        {
            "File": {"Name": s.target, "UID": "0", "GID": "0", "Mode": s.mode},
            "SecretID": ids[s.name],
            "SecretName": s.name,
        }
        for s in secrets
    ]


def in_use(services: Iterable[Mapping[str, Any]]) -> set[str]:
    """The names of the secrets the services of ``GET /services`` mount."""
    out: set[str] = set()
    for svc in services:
        container = (((svc.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec")) or {}
        out.update(str(ref.get("SecretName", "")) for ref in container.get("Secrets") or [])
    return out


def unused(secrets: Iterable[Mapping[str, Any]], used: set[str]) -> list[str]:
    """The ids of the application's file secrets (``GET /secrets`` answers) that no service mounts, sorted
    by name."""
    found = []
    for secret in secrets:
        spec = secret.get("Spec") or {}
        if FILE_LABEL in (spec.get("Labels") or {}) and str(spec.get("Name", "")) not in used:
            found.append((str(spec.get("Name", "")), str(secret.get("ID", ""))))
    return [secret_id for _, secret_id in sorted(found)]
