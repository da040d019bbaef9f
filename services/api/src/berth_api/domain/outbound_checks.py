"""The outbound rule (``berth_common.outbound``) applied to what a team stores: a git repository's host, an
image's registry, a registry credential's host, an S3 endpoint, a forge API. Each returns the sentence of a
422 (the rule and the host, never a credential), or None when the target passes.

This is the check of the host as written; the service that connects checks again every address the name
resolves to (``berth_common.outbound_net``).
"""

from __future__ import annotations

from collections.abc import Mapping

from berth_common import registries
from berth_common.images import parse_image_map
from berth_common.outbound import HostError, OutboundPolicy, Refusal


def _sentence(refusal: Refusal | None) -> str | None:
    return None if refusal is None else refusal.reason


def host_refusal(policy: OutboundPolicy, host: str) -> str | None:
    """A bare host (an optional ``:port`` and IPv6 brackets allowed)."""
    if host.startswith("["):
        host = host[: host.index("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        return _sentence(policy.check_host(host))
    except HostError as exc:
        return f"the host {exc}"


def url_refusal(policy: OutboundPolicy, url: str) -> str | None:
    try:
        return _sentence(policy.check_url(url))
    except HostError as exc:
        return f"the URL {exc}"


def git_refusal(policy: OutboundPolicy, repository: str) -> str | None:
    """A remote repository's host (a local path or ``file://`` has none: the local-git setting rules it)."""
    if repository.startswith("/") or repository.startswith("file://"):
        return None
    return url_refusal(policy, repository)


def image_refusal(policy: OutboundPolicy, image: str, image_map: str | Mapping[str, str] = "") -> str | None:
    """The registry an image is pulled from. An image the platform's image map sends to a mirror is pulled
    from the mirror, which the operator chose: not checked."""
    mapping = parse_image_map(image_map) if isinstance(image_map, str) else image_map
    try:
        host = registries.registry_of(image)
        if registries.pull_host(image, mapping) != host:
            return None
    except registries.InvalidReferenceError:
        return None  # the reference's own validation answers
    if host == "docker.io":
        return None
    return host_refusal(policy, host)
