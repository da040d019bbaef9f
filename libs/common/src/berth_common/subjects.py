"""The subjects table of docs/architecture.md, generated from the catalogue (``make docs`` rewrites it)."""

from __future__ import annotations

import re
from pathlib import Path

from berth_common.catalogue import REGISTRY

BEGIN, END = "<!-- subjects:begin -->", "<!-- subjects:end -->"


def _subject(type_: str, kind: str) -> str:
    if kind == "query":
        return f"rpc.<service>.{type_.removeprefix('rpc.')}"
    if type_ == "evt.log.line":
        return "log.<deployment_id>"
    return type_


def markdown_table() -> str:
    rows = ["| subject | kind | message | producers | consumers | what it means |", "|---|---|---|---|---|---|"]
    for type_, model in sorted(REGISTRY.items(), key=lambda kv: (kv[1].KIND, kv[0])):
        doc = " ".join((model.__doc__ or "").split()).split(". ")[0].rstrip(".")
        rows.append(
            f"| `{_subject(type_, model.KIND)}` | {model.KIND} | {model.__name__} v{model.SCHEMA_VERSION} | "
            f"{', '.join(model.PRODUCERS)} | {', '.join(model.CONSUMERS)} | {doc} |"
        )
    return "\n".join(rows)


def rewrite(doc: Path) -> bool:
    """Replace the table between the markers in ``doc``; True if it changed."""
    text = doc.read_text()
    new = re.sub(
        re.escape(BEGIN) + r".*?" + re.escape(END), f"{BEGIN}\n{markdown_table()}\n{END}", text, flags=re.DOTALL
    )
    if new != text:
        doc.write_text(new)
    return new != text


if __name__ == "__main__":  # pragma: no cover
    rewrite(Path("docs/architecture.md"))
