"""Names the scheduler gives things on the server: containers, routes, images. Pure and validated."""

from __future__ import annotations

import hashlib
import re

from berth_common import values
from berth_common.redaction import REDACTED as REDACTED
from berth_common.redaction import redact as redact  # the one rule, used from here by the use cases

SLUG_RE = values.SLUG_RE
CONTAINER_NAME_RE = re.compile(
    rf"^berth-(?P<app>{values.SLUG})-(?P<service>{values.SLUG})"
    r"-(?P<deployment>[a-z0-9]{8})-(?P<replica>[1-9][0-9]{0,2})$"
)
ROUTE_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
MAX_REPLICAS = 999


class InvalidNameError(ValueError):
    """A name that must never reach Docker or the proxy."""


def check_slug(value: str, what: str) -> str:
    if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
        raise InvalidNameError(f"invalid {what} {value!r}: 1-32 lowercase letters, digits or '-', not at either end")
    return value


def _matching(name: str, pattern: re.Pattern[str], what: str) -> str:
    """``name`` when the whole of it matches ``pattern``; a name built from checked parts still is checked."""
    if not pattern.fullmatch(name):
        raise InvalidNameError(f"invalid {what} {name!r}")
    return name


def short_id(deployment_id: str) -> str:
    """Eight lowercase letters/digits that identify a deployment in names (from its id, or its hash)."""
    cleaned = re.sub(r"[^a-z0-9]", "", deployment_id.lower())
    if len(cleaned) >= 8 and cleaned == deployment_id.lower().replace("-", ""):
        return cleaned[:8]
    return hashlib.sha256(deployment_id.encode()).hexdigest()[:8]


def container_name(app: str, service: str, deployment_id: str, replica: int) -> str:
    """``berth-<app>-<service>-<deployment short>-<n>``, checked against the pattern."""
    check_slug(app, "application name")
    check_slug(service, "service name")
    if not 1 <= replica <= MAX_REPLICAS:
        raise InvalidNameError(f"invalid replica number {replica}")
    return _matching(f"berth-{app}-{service}-{short_id(deployment_id)}-{replica}", CONTAINER_NAME_RE, "container name")


def route_id(application_id: str, service: str) -> str:
    """A stable route id for one web service of one application (the same across its deployments)."""
    check_slug(service, "service name")
    app = re.sub(r"[^a-z0-9]", "", application_id.lower())
    if not app or app != application_id.lower().replace("-", "") or len(app) > 40:
        app = hashlib.sha256(application_id.encode()).hexdigest()[:24]
    return _matching(f"app-{app}-{service}", ROUTE_ID_RE, "route id")


def image_tag(app: str, deployment_id: str) -> str:
    """The tag a build for this deployment produces: one tag per deployment, kept for rollbacks."""
    check_slug(app, "application name")
    return f"berth/{app}:{short_id(deployment_id)}"


def upstream(host_port: int) -> str:
    if not 1 <= host_port <= 65535:
        raise InvalidNameError(f"invalid host port {host_port}")
    return f"http://127.0.0.1:{host_port}"


def network_upstream(container: str, port: int) -> str:
    """The upstream of a replica on a remote server: its name on that server's Berth network."""
    _matching(container, CONTAINER_NAME_RE, "container name")
    if not 1 <= port <= 65535:
        raise InvalidNameError(f"invalid port {port}")
    return f"http://{container}:{port}"
