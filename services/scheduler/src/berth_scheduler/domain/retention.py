"""Which built images of an application to keep: the last N successful deployments' images (for rollback,
never pruned), those of deployments still in flight, and any image whose deployment the scheduler has not
finished (a build that just completed for a deployment not yet recorded); every other tag is removed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from berth_common import labels


@dataclass(frozen=True)
class BuiltImage:
    id: str
    tags: tuple[str, ...]
    deployment: str | None = None  # the deployment it was built for (image label)


def built_images(listed: Iterable[tuple[str, tuple[str, ...], dict[str, str]]]) -> list[BuiltImage]:
    """The images Docker lists (id, tags, labels) with the deployment each was built for."""
    return [BuiltImage(id=i, tags=t, deployment=found.get(labels.DEPLOYMENT)) for i, t, found in listed]


def tags_to_remove(
    images: Iterable[BuiltImage], keep: set[str], app_repository: str, finished: set[str] | None = None
) -> list[str]:
    """The tags to untag, in a stable order. Only tags of this application's repository are touched (an image
    reused under another tag keeps the tags it still needs), and a kept image id keeps all of its tags.
    ``finished``: the deployments known to have ended; an image built for any other deployment is kept
    (None: no such protection)."""
    images = list(images)
    kept_ids = {
        img.id
        for img in images
        if any(t in keep for t in img.tags)
        or (finished is not None and img.deployment is not None and img.deployment not in finished)
    }
    prefix = f"{app_repository}:"
    out = [
        tag
        for img in images
        if img.id not in kept_ids
        for tag in img.tags
        if tag.startswith(prefix) and tag not in keep
    ]
    return sorted(out)


@dataclass(frozen=True)
class PulledImage:
    id: str
    tags: tuple[str, ...]
    digests: tuple[str, ...]  # repo digests (``<registry>/<ns>/<app>@sha256:...``)
    deployment: str | None = None  # the deployment it was built for (image label), when it carries one


def pulled_images(listed: Iterable[tuple[str, tuple[str, ...], tuple[str, ...], dict[str, str]]]) -> list[PulledImage]:
    """The images Docker lists (id, tags, repo digests, labels) with the deployment each was built for."""
    return [PulledImage(id=i, tags=t, digests=d, deployment=found.get(labels.DEPLOYMENT)) for i, t, d, found in listed]


def pulled_to_remove(
    images: Iterable[PulledImage], pushed: set[str], keep: set[str], finished: set[str] | None = None
) -> list[str]:
    """The references to remove, in a stable order, of the images pulled by digest from a push registry.
    ``pushed``: the references Berth itself pushed for the application (an image reached by no such
    reference is never touched, so a user's own image stays); ``keep``: every reference a kept deployment
    runs. An image holding a kept reference (digest or tag) keeps all of them; otherwise its pushed digests
    go, with its tags in the repositories of those digests. ``finished`` as for ``tags_to_remove``."""
    out: set[str] = set()
    for img in images:
        own = [d for d in img.digests if d in pushed]
        if not own or any(r in keep for r in (*img.digests, *img.tags)):
            continue
        if finished is not None and img.deployment is not None and img.deployment not in finished:
            continue
        repos = {d.split("@", 1)[0] for d in own}
        out.update(own)
        out.update(t for t in img.tags if t.rsplit(":", 1)[0] in repos)
    return sorted(out)
