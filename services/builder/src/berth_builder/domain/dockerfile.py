"""The image map (official name -> local image) and the rewriting of ``FROM`` lines before a build.

``BERTH_IMAGE_MAP`` has the format the CLI documents (``berth_cli.baseimages``): a JSON object, or
``name=image,name=image`` pairs. A key without a tag maps every tag of that repository; Docker Hub
prefixes (``docker.io/library/``) are ignored on both sides of the comparison.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

BUSYBOX_IMAGE = "berth/busybox:1"
PYTHON_IMAGE = "berth/python:3-bookworm"
# The local base images `berth up` makes (same defaults as berth_cli.baseimages.DEFAULT_IMAGE_MAP).
DEFAULT_IMAGE_MAP: dict[str, str] = {
    "busybox": BUSYBOX_IMAGE,
    **{
        f"python:{v}": PYTHON_IMAGE
        for v in ("3", "3-slim", "3-bookworm", "3-slim-bookworm", "3.11", "3.11-slim", "3.12", "3.12-slim", "3.13-slim")
    },
}

_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$", re.IGNORECASE)
_FROM = re.compile(r"^(?P<lead>\s*FROM\s+)(?P<flags>(?:--\S+\s+)*)(?P<image>\S+)(?P<rest>.*)$", re.IGNORECASE)
_AS = re.compile(r"^\s+AS\s+(?P<name>\S+)\s*$", re.IGNORECASE)


class ImageMapError(ValueError):
    pass


def check_ref(ref: str) -> str:
    if not _REF.fullmatch(ref) or ref.startswith("-"):
        raise ImageMapError(f"invalid image reference {ref!r}")
    return ref


def parse_image_map(text: str) -> dict[str, str]:
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
    return {**defaults, **parse_image_map(setting)}


def _normalise(ref: str) -> str:
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    return ref.removeprefix("library/")


def _repository(ref: str) -> str:
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
