"""The rewriting of ``FROM`` lines before a build, through the image map of ``berth_common.images``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from berth_common.images import (
    BUSYBOX_IMAGE,
    DEFAULT_IMAGE_MAP,
    PYTHON_IMAGE,
    ImageMapError,
    check_ref,
    image_map,
    parse_image_map,
    resolve_image,
)

__all__ = [
    "BUSYBOX_IMAGE",
    "DEFAULT_IMAGE_MAP",
    "PYTHON_IMAGE",
    "ImageMapError",
    "base_images",
    "check_ref",
    "image_map",
    "parse_image_map",
    "resolve_image",
    "rewrite_from_lines",
]

_FROM = re.compile(r"^(?P<lead>\s*FROM\s+)(?P<flags>(?:--\S+\s+)*)(?P<image>\S+)(?P<rest>.*)$", re.IGNORECASE)
_AS = re.compile(r"^\s+AS\s+(?P<name>\S+)\s*$", re.IGNORECASE)


def rewrite_from_lines(dockerfile: str, mapping: Mapping[str, str]) -> tuple[str, list[tuple[str, str]]]:
    """Replace mapped base images in ``FROM`` lines. Stage names, ``scratch`` and images built from
    ``${ARG}`` are left alone. Returns the new text and the (from, to) replacements made."""
    stages: set[str] = set()
    out: list[str] = []
    changes: list[tuple[str, str]] = []
    for line in dockerfile.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        m = _FROM.match(body)
        if m is None:
            out.append(line)
            continue
        image, rest = m.group("image"), m.group("rest")
        alias = _AS.match(rest)
        target = image
        if image.lower() not in stages and image != "scratch" and "$" not in image:
            target = resolve_image(image, mapping)
        if alias:
            stages.add(alias.group("name").lower())
        if target != image:
            changes.append((image, target))
            line = f"{m.group('lead')}{m.group('flags')}{target}{rest}{line[len(body) :]}"
        out.append(line)
    return "".join(out), changes


def base_images(dockerfile: str) -> list[str]:
    """The external images a Dockerfile starts from (stage references, scratch and ${ARG}s excluded)."""
    stages: set[str] = set()
    found: list[str] = []
    for line in dockerfile.splitlines():
        m = _FROM.match(line)
        if m is None:
            continue
        image = m.group("image")
        if image.lower() not in stages and image != "scratch" and "$" not in image and image not in found:
            found.append(image)
        alias = _AS.match(m.group("rest"))
        if alias:
            stages.add(alias.group("name").lower())
    return found
