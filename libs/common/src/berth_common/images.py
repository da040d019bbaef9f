"""The image map: official image names -> local images (``BERTH_IMAGE_MAP``).

No registry is needed to run Berth: the base images are made locally (``berth images base``) and the
official names used in Dockerfiles and application specs are mapped to them. The same map serves
air-gapped installs and private registry mirrors. ``BERTH_IMAGE_MAP`` is a JSON object or
``name=image,name=image`` pairs; a key without a tag maps every tag of that repository; Docker Hub prefixes
(``docker.io/library/``) are ignored on both sides of the comparison.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

BUSYBOX_IMAGE = "berth/busybox:1"
PYTHON_IMAGE = "berth/python:3-bookworm"
POSTGRES_IMAGE = "berth/postgres:15-bookworm"
MARIADB_IMAGE = "berth/mariadb:10.11-bookworm"
REDIS_IMAGE = "berth/redis:7-bookworm"

DEFAULT_IMAGE_MAP: dict[str, str] = {
    "busybox": BUSYBOX_IMAGE,
    **{
        f"python:{v}": PYTHON_IMAGE
        for v in ("3", "3-slim", "3-bookworm", "3-slim-bookworm", "3.11", "3.11-slim", "3.12", "3.12-slim", "3.13-slim")
    },
    **{f"postgres:{v}": POSTGRES_IMAGE for v in ("15", "15-bookworm", "15.8", "15.9", "15.10")},
    **{f"mariadb:{v}": MARIADB_IMAGE for v in ("10.11", "10.11.9", "10.11.10")},
    **{f"redis:{v}": REDIS_IMAGE for v in ("7", "7.0", "7.0-bookworm", "7.0.15")},
}

# An image reference as docker accepts it (repository[:tag][@digest]); no spaces, no options.
_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$", re.IGNORECASE)
_HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")


class ImageMapError(ValueError):
    """``BERTH_IMAGE_MAP`` or an image reference in it is malformed."""


def check_ref(ref: str) -> str:
    if not _REF.fullmatch(ref) or ref.startswith("-"):
        raise ImageMapError(f"invalid image reference {ref!r}")
    return ref


def parse_image_map(text: str) -> dict[str, str]:
    """Parse ``BERTH_IMAGE_MAP``; every name and image is validated."""
    text = text.strip()
    if not text:
        return {}
    items: Iterable[tuple[str, str]]
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImageMapError(f"BERTH_IMAGE_MAP is not valid JSON: {exc}") from None
        if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            raise ImageMapError("BERTH_IMAGE_MAP: a JSON object of strings to strings is expected")
        items = raw.items()
    else:
        pairs = []
        for part in text.split(","):
            if not part.strip():
                continue
            name, sep, local = part.partition("=")
            if not sep:
                raise ImageMapError(f"BERTH_IMAGE_MAP: {part.strip()!r} is not name=image")
            pairs.append((name.strip(), local.strip()))
        items = pairs
    return {check_ref(k): check_ref(v) for k, v in items}


def image_map(setting: str, defaults: Mapping[str, str] = DEFAULT_IMAGE_MAP) -> dict[str, str]:
    """The defaults, overridden and extended by the ``BERTH_IMAGE_MAP`` setting's value."""
    return {**defaults, **parse_image_map(setting)}


def _normalise(ref: str) -> str:
    """``docker.io/library/python:3`` -> ``python:3``; ``index.docker.io/x/y`` -> ``x/y``."""
    for prefix in _HUB_PREFIXES:
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    return ref.removeprefix("library/")


def _repository(ref: str) -> str:
    """The repository part of a reference: no digest, no tag (a ``:`` after the last ``/`` is a tag)."""
    ref = ref.split("@", 1)[0]
    slash, colon = ref.rfind("/"), ref.rfind(":")
    return ref[:colon] if colon > slash else ref


def resolve_image(ref: str, mapping: Mapping[str, str]) -> str:
    """The local image for ``ref``: an exact entry, then its repository's entry; else ``ref`` unchanged."""
    table = {_normalise(k): v for k, v in mapping.items()}
    norm = _normalise(ref)
    for candidate in (norm, norm.split("@", 1)[0], _repository(norm)):
        if candidate in table:
            return table[candidate]
    return ref
