"""The metadata of an imported Coolify template: its header comments (``# slogan: ...``) as Berth's name,
description, tags and documentation link, and the headers Berth has no use for, listed by name."""

from __future__ import annotations

import re
from typing import Any

from berth_api.domain.templates.imported import headline, slugify

_HEADER = re.compile(r"^#(.*?):(.*)$")
_KNOWN_HEADERS = {"documentation", "slogan", "tags", "category", "logo", "port"}


def headers(text: str) -> dict[str, str]:
    """``# key: value`` from every line (key up to the first colon, both trimmed; the last one wins)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            found[m.group(1).strip()] = m.group(2).strip()
    return found


def metadata(stem: str, head: dict[str, str], not_carried: list[str], notes: list[str]) -> dict[str, Any]:
    tags = [t.strip().lower() for t in head.get("tags", "").split(",") if t.strip()]
    category = head.get("category")
    if category and category.lower() not in tags:
        tags.insert(0, category.lower())
        notes.append(f"category '{category}': carried as a tag")
    if head.get("logo"):
        not_carried.append(f"logo: '{head['logo']}' is a file of Coolify's repository")
    for key in ("minversion", "ignore", "env_file", "amd_only", "arm_only"):
        if key in head:
            not_carried.append(f"header '{key}: {head[key]}': no Berth equivalent")
    for key in sorted(set(head) - _KNOWN_HEADERS - {"minversion", "ignore", "env_file", "amd_only", "arm_only"}):
        not_carried.append(f"header '{key}': not a Coolify template key")
    return {
        "name": headline(stem),
        "slug": slugify(stem),
        "description": head.get("slogan") or headline(stem),
        "tags": tuple(tags),
        "docs": head.get("documentation") or "https://coolify.io/docs",
    }
