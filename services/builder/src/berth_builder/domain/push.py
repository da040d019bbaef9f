"""Pushing a built image to the team's push registry, as pure data: the reference it is pushed as, the
engine calls, the progress lines of the build log, the digest the registry answered, and failures in words
a person can act on. ``adapters/docker.py`` executes the calls; ``usecases/push.py`` runs them in order.

The image ``berth/<application>:<deployment>`` is pushed as ``<registry>/<namespace>/<application>:
<deployment>``; the registry's answer names the manifest digest, and ``<registry>/<namespace>/
<application>@sha256:...`` is what the scheduler pulls on every target server.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth_common import registries
from berth_common.catalogue import PushTarget, RegistryAuth
from berth_common.registries import registry_auth_header
from berth_common.registries import stream_error as stream_error

# Per-layer states that change many times a second: not worth a build log line each.
_CHATTY = frozenset({"Pushing", "Preparing", "Waiting"})
_DIGEST = re.compile(r"\bdigest: (sha256:[0-9a-f]{64})\b")


@dataclass(frozen=True)
class PushPlan:
    """Where a build's image goes: ``repository:tag``, and the registry's credentials."""

    repository: str
    tag: str
    auth: RegistryAuth = field(repr=False)

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    def pushed(self, digest: str) -> str:
        """The reference the scheduler pulls: the repository at the digest the registry answered."""
        return f"{self.repository}@{digest}"


def push_plan(image_tag: str, target: PushTarget) -> PushPlan:
    """``berth/<app>:<deployment>`` -> ``<registry>/<namespace>/<app>:<deployment>`` (the tag is the build's)."""
    name, _, tag = image_tag.rpartition(":")
    if not name or "/" in tag:
        name, tag = image_tag, "latest"
    application = name.rsplit("/", 1)[-1]
    return PushPlan(target.repository(application), tag, target.auth)


@dataclass(frozen=True)
class EngineCall:
    """One Engine API call: method, path (without the version prefix), query and headers."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict, repr=False)


def tag_call(image: str, plan: PushPlan) -> EngineCall:
    """``POST /images/{image}/tag?repo=..&tag=..``: the built image under the push reference."""
    return EngineCall("POST", f"images/{image}/tag", {"repo": plan.repository, "tag": plan.tag})


def push_call(plan: PushPlan, password: str) -> EngineCall:
    """``POST /images/{repository}/push?tag=..`` with the registry's credentials (``X-Registry-Auth``)."""
    header = registry_auth_header(plan.auth.registry, plan.auth.username, password)
    return EngineCall("POST", f"images/{plan.repository}/push", {"tag": plan.tag}, {"X-Registry-Auth": header})


def registry_config_header(auths: Mapping[str, tuple[str, str]]) -> str:
    """``X-Registry-Config`` of ``POST /build``: credentials per registry host for pulling ``FROM`` bases
    (the legacy builder reads it; BuildKit asks the build's session instead)."""
    body = {host: {"username": user, "password": password} for host, (user, password) in sorted(auths.items())}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def progress_line(message: Mapping[str, Any]) -> str | None:
    """A build log line for one message of the engine's push stream (None: too fine-grained to show)."""
    return registries.progress_line(message, "push", _CHATTY)


def stream_digest(message: Mapping[str, Any]) -> str | None:
    """The manifest digest the registry answered (the ``aux`` object, or the final status line)."""
    aux = message.get("aux")
    if isinstance(aux, dict) and isinstance(aux.get("Digest"), str) and aux["Digest"].startswith("sha256:"):
        return str(aux["Digest"])
    found = _DIGEST.search(str(message.get("status") or ""))
    return found.group(1) if found else None


_UNAUTHORIZED = re.compile(
    r"unauthorized|authentication required|no basic auth credentials|denied|\b401\b|incorrect username",
    re.IGNORECASE,
)
_UNREACHABLE = re.compile(
    r"connection refused|no such host|dial tcp|i/o timeout|timed out|no route to host|network is unreachable|"
    r"server gave HTTP response to HTTPS client|certificate|tls:",
    re.IGNORECASE,
)


def failure_reason(plan: PushPlan, error: str) -> str:
    """Why the push failed and what to do (``error``: the engine's words, kept at the end)."""
    host = plan.auth.registry
    if _UNAUTHORIZED.search(error):
        why = (
            f"{host} refused the credentials of the team's push registry (check its username and password or "
            f"token, and that the user may push to {plan.repository})"
        )
    elif _UNREACHABLE.search(error):
        why = f"the registry {host} could not be reached from the build server (check its address and network)"
    else:
        why = f"{host} answered with an error"
    return f"could not push {plan.reference}: {why}: {error.strip()[:1000]}"
