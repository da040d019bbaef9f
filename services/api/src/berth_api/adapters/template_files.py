"""The template catalogue shipped in the package (``berth_api/templates/<slug>.yml`` and its logos), read
once and kept: the files never change while the process runs."""

from __future__ import annotations

from functools import cache
from importlib import resources

from berth_api.domain.templates.format import parse_text
from berth_api.domain.templates.model import Template

PACKAGE = "berth_api.templates"


@cache
def catalogue() -> tuple[Template, ...]:
    """Every template of the catalogue, by slug; a file that does not parse is a packaging bug (raised)."""
    root = resources.files(PACKAGE)
    found = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yml"):
            found.append(parse_text(entry.read_text(encoding="utf-8"), f"/{entry.name}"))
    return tuple(found)


def logo(path: str) -> bytes | None:
    """A logo file of the catalogue (``logos/<name>.svg``), or None."""
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    entry = resources.files(PACKAGE).joinpath(*parts)
    return entry.read_bytes() if entry.is_file() else None
