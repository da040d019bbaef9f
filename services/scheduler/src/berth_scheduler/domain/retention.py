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
