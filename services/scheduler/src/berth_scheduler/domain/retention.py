"""Which built images of an application to keep: the last N successful deployments' images (for rollback,
never pruned), those of deployments still in flight, and any image whose deployment the scheduler has not
finished (a build that just completed for a deployment not yet recorded); every other tag is removed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from berth_common import labels
from berth_common.registries import HUB_ALIASES, InvalidReferenceError, parse


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


def familiar(reference: str) -> str:
    """A reference in the form the engine lists it (``RepoTags``, ``RepoDigests``) and its ``reference``
    filter matches: a Docker Hub image without its registry (any of Hub's aliases) and an official image
    without ``library/`` (``docker.io/library/x`` -> ``x``, ``index.docker.io/user/x:1`` -> ``user/x:1``).
    Another registry's reference, or text that is no reference, is returned as it is."""
    try:
        ref = parse(reference)
    except InvalidReferenceError:
        return reference
    if ref.registry not in HUB_ALIASES:
        return reference
    first, _, rest = ref.name.partition("/")
    name = rest if rest and first.lower() in HUB_ALIASES else ref.name
    if name.startswith("library/") and name.count("/") == 1:
        name = name.removeprefix("library/")
    return str(replace(ref, name=name))


def repository_of(reference: str) -> str:
    """The familiar repository of a pushed reference (``docker.io/library/x@sha256:...`` -> ``x``)."""
    return familiar(reference).split("@", 1)[0]


def pulled_to_remove(
    images: Iterable[PulledImage], pushed: set[str], keep: set[str], finished: set[str] | None = None
) -> list[str]:
    """The references to remove, in a stable order, of the images pulled by digest from a push registry.
    ``pushed``: the references Berth itself pushed for the application (an image reached by no such
    reference is never touched, so a user's own image stays); ``keep``: every reference a kept deployment
    runs. An image holding a kept reference (digest or tag) keeps all of them; otherwise its pushed digests
    go, with its tags in the repositories of those digests. ``finished`` as for ``tags_to_remove``. A
    reference matches in its familiar form (``familiar``: Docker Hub's ``docker.io/library/x``, ``x`` and
    ``user/x`` as the engine lists them); the references returned are the ones the engine lists."""
    pushed, keep = {familiar(p) for p in pushed}, {familiar(k) for k in keep}
    out: set[str] = set()
    for img in images:
        own = [d for d in img.digests if familiar(d) in pushed]
        if not own or any(familiar(r) in keep for r in (*img.digests, *img.tags)):
            continue
        if finished is not None and img.deployment is not None and img.deployment not in finished:
            continue
        repos = {repository_of(d) for d in own}
        out.update(own)
        out.update(t for t in img.tags if familiar(t).rsplit(":", 1)[0] in repos)
    return sorted(out)
