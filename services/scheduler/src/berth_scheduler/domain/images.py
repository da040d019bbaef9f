"""Pulling prebuilt images: the pull policy, the engine call as data, progress lines, failures in words a
person can act on, and the digest a deployment records. Pure: ``adapters/registry.py`` executes it.

Policy: ``always`` asks the registry before every deployment (a moved tag is followed); ``if-missing``
uses the image on the server when it is there, without contacting a registry. Unset, a digest reference
is ``if-missing`` (the registry can only give the same image) and a tag ``always``. Images in Berth's own
namespace (``berth/<app>:<deployment>`` built here, ``berth/busybox`` and the other base images made
locally) are never pulled: a registry image of that name is not what Berth made.

A built image reaches the servers a deployment runs on by :func:`image_delivery`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from berth_common import registries
from berth_common.registries import DOCKER_HUB, ImageRef
from berth_common.registries import registry_auth_header as registry_auth_header  # shared with the builder
from berth_common.registries import stream_error as stream_error
from berth_scheduler.domain.routing import LOCAL

Policy = Literal["always", "if-missing", "never"]
LOCAL_NAMESPACE = "berth/"
# Per-layer states that change many times a second: not worth a log line each.
_CHATTY = frozenset({"Downloading", "Extracting", "Waiting", "Verifying Checksum"})
FailureKind = Literal["disk_full", "unauthorized", "not_found", "unreachable", "other"]


def effective_policy(ref: ImageRef, asked: str | None) -> Policy:
    """The policy a deployment follows for its image (``asked``: the application's, None when unset)."""
    if ref.registry == DOCKER_HUB and ref.name.startswith(LOCAL_NAMESPACE):
        return "never"
    if asked in ("always", "if-missing"):
        return asked  # type: ignore[return-value]
    return "if-missing" if ref.pinned else "always"


def must_pull(policy: Policy, present: bool) -> bool:
    """Whether the registry is asked: ``always`` does, ``if-missing`` only for an absent image."""
    return policy == "always" or (policy == "if-missing" and not present)


@dataclass(frozen=True)
class PullCall:
    """``POST /images/create?fromImage=..&tag=..`` with its headers; ``tag`` is a tag or a digest."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str] = field(repr=False)


def pull_call(ref: ImageRef, auth_header: str | None = None) -> PullCall:
    """The engine call that pulls ``ref`` (the engine takes a digest in ``tag`` too; no tag: ``latest``)."""
    params = {"fromImage": ref.name, "tag": ref.digest or ref.tag or "latest"}
    headers = {"X-Registry-Auth": auth_header} if auth_header else {}
    return PullCall("POST", "images/create", params, headers)


def progress_line(message: dict[str, Any]) -> str | None:
    """A deploy log line for one message of the engine's pull stream (None: too fine-grained to show)."""
    return registries.progress_line(message, "pull", _CHATTY)


def layer_total(message: dict[str, Any]) -> tuple[str, int] | None:
    """(layer id, its compressed size) from a ``Downloading`` message of the pull stream, else None: their
    sum is a lower bound of the room the pull needs."""
    detail = message.get("progressDetail")
    total = detail.get("total") if isinstance(detail, dict) else None
    if message.get("status") != "Downloading" or not isinstance(total, int) or total <= 0:
        return None
    return str(message.get("id") or ""), total


_STREAM_DIGEST = re.compile(r"^Digest: (sha256:[0-9a-f]{64})$")


def stream_digest(ref: ImageRef, message: dict[str, Any]) -> str | None:
    """``<name>@sha256:...`` when a pull stream message reports the digest of what was pulled."""
    found = _STREAM_DIGEST.match(str(message.get("status") or "").strip())
    return f"{ref.name}@{found.group(1)}" if found else None


_UNAUTHORIZED = re.compile(
    r"unauthorized|authentication required|no basic auth credentials|access to the resource is denied|"
    r"pull access denied|\b401\b|incorrect username or password",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(r"manifest unknown|not found|name unknown|no such image|does not exist|\b404\b", re.IGNORECASE)
_NO_SPACE = "no space left on device"  # the engine's words (``berth_common.docker.disk_full``)
_UNREACHABLE = re.compile(
    r"connection refused|no such host|dial tcp|i/o timeout|timeout|timed out|no route to host|"
    r"network is unreachable|server misbehaving|connection reset|\bEOF\b|deadline exceeded|server gave HTTP response to HTTPS client|"
    r"certificate|tls:|temporary failure in name resolution",
    re.IGNORECASE,
)


def failure_kind(error: str) -> FailureKind:
    # the server's own disk first: the engine's words for it ("write .../containerd/...: no space left on
    # device") may carry a path or a timeout that reads as one of the registry's failures below
    if _NO_SPACE in error.lower():
        return "disk_full"
    # Docker Hub answers 'pull access denied ... repository does not exist or may require docker login' for
    # both: 'unauthorized' below, with the advice naming both causes.
    if _UNAUTHORIZED.search(error):
        return "unauthorized"
    if _NOT_FOUND.search(error):
        return "not_found"
    if _UNREACHABLE.search(error):
        return "unreachable"
    return "other"


def failure_reason(ref: ImageRef, error: str, *, with_credentials: bool, present: bool) -> str:
    """Why the deployment failed, with what to do (``error``: the engine's words, kept at the end)."""
    head = (
        f"could not pull {str(ref)!r}"
        if present
        else f"image {str(ref)!r} is not on this server and could not be pulled"
    )
    kind = failure_kind(error)
    if kind == "disk_full":
        why = "the server's disk has no room for it: free space there (docker system prune, a larger disk) and deploy again"
    elif kind == "unauthorized" and with_credentials:
        why = f"{ref.registry} refused the credentials of its registry entry (check the username and password or token)"
    elif kind == "unauthorized":
        why = (
            f"{ref.registry} refused an anonymous pull: the image does not exist there or is private "
            f"(check the name, or add the registry with credentials: POST /v1/registries)"
        )
    elif kind == "not_found":
        why = f"{ref.registry} has no such image (check the repository name and the tag or digest)"
    elif kind == "unreachable":
        why = (
            f"the registry {ref.registry} could not be reached from this server (check its address, the "
            f"server's network and DNS; or load the image and set the pull policy to if-missing)"
        )
    else:
        why = f"{ref.registry} answered with an error"
    return f"{head}: {why}: {error.strip()[:1000]}"


def digest_of(ref: ImageRef, repo_digests: list[str]) -> str | None:
    """The ``repo@sha256:...`` of the image (``RepoDigests``) for the repository ``ref`` names; None when it
    has none (never pulled from or pushed to that repository: another repository's digest would make a
    rollback pull from somewhere else)."""
    if not repo_digests:
        return None
    wanted = {ref.name}
    if ref.registry == DOCKER_HUB:  # the engine lists Docker Hub images by their short name
        short = ref.name.split("/", 1)[1] if ref.name.split("/", 1)[0] in ("docker.io", "index.docker.io") else ref.name
        wanted |= {short, short.removeprefix("library/")}
    found = sorted(d for d in repo_digests if d.rsplit("@", 1)[0] in wanted)
    return found[0] if found else None


ImageWay = Literal["present", "pull", "stream", "check"]


@dataclass(frozen=True)
class ImageDelivery:
    """How a deployment's image reaches one server: it is there already (``present``: the build server,
    or a prebuilt image ``pull.py`` pulled on the control plane), the server pulls ``image`` (a built image
    pushed to the team's push registry), it is streamed from ``source`` (``docker save | docker load`` over
    SSH, no registry), or it must be there (``check``: a prebuilt image pulled on that server)."""

    way: ImageWay
    image: str
    source: str = LOCAL


def image_delivery(image: str, pushed_ref: str | None, *, built: bool, build_server: str, server: str) -> ImageDelivery:
    """How ``image`` reaches ``server``. A pushed build is pulled by its reference on every server; a build
    without a push registry is streamed from its build server to every other server; Berth's own images
    (``berth/...``, a rollback of a build) are streamed from the control plane's engine."""
    if pushed_ref:
        return ImageDelivery("pull", pushed_ref)
    if built or image.startswith(LOCAL_NAMESPACE):
        origin = build_server if built else LOCAL
        return ImageDelivery("present" if server == origin else "stream", image, origin)
    return ImageDelivery("present" if server == LOCAL else "check", image)


@dataclass(frozen=True)
class TagCall:
    """``POST /images/<source>/tag?repo=..&tag=..``: the image ``source`` names gets one more name."""

    method: str
    path: str
    params: dict[str, str]


@dataclass(frozen=True)
class ScalePull:
    """What a scale pulls onto a server that lacks ``named`` (the reference its containers are made from):
    ``pull``, then ``tag`` (None: ``pull`` is ``named`` itself)."""

    pull: str
    tag: TagCall | None = None


def scale_pull(named: str, ran: str | None) -> ScalePull:
    """A new replica of a scale runs the image its live deployment ran (``ran``: the ``repo@sha256:...`` it
    recorded, None or "" when it recorded none): pulled by that digest, even when the tag moved since, and
    tagged as ``named`` so the replica is made as its siblings were. ``named`` itself when no digest of its
    repository is known or it names a digest already."""
    ref = registries.parse(named)
    if not ran or ref.pinned or "@" not in ran or ran.rsplit("@", 1)[0] != ref.name:
        return ScalePull(named)
    return ScalePull(ran, TagCall("POST", f"images/{ran}/tag", {"repo": ref.name, "tag": ref.tag or "latest"}))
