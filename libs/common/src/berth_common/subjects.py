"""The generated parts of docs/architecture.md, from the catalogue (``make docs`` rewrites them): the picture
of who sends what to whom, and the subjects table."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from berth_common.catalogue import REGISTRY, SERVICES

BEGIN, END = "<!-- subjects:begin -->", "<!-- subjects:end -->"
PICTURE_BEGIN, PICTURE_END = "<!-- picture:begin -->", "<!-- picture:end -->"


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


def _everyone(parties: tuple[str, ...]) -> bool:
    return set(parties) >= set(SERVICES)


def _label(subjects: list[str]) -> str:
    """``evt.route.{applied, failed}``: the subjects of one arrow, a family on one line."""
    families: dict[str, list[str]] = defaultdict(list)
    for subject in sorted(subjects):
        family, _, last = subject.rpartition(".")
        families[family].append(last)
    lines = [f"{f}.{names[0]}" if len(names) == 1 else f"{f}.{{{', '.join(names)}}}" for f, names in families.items()]
    return "<br/>".join(lines)


def mermaid() -> str:
    """A mermaid flowchart: one arrow per sender and receiver, labelled with the subjects it carries.

    Queries point from the asker to the service that answers. The messages every service sends or answers
    (dead letters, the health query) are named under the picture instead of drawn.
    """
    arrows: dict[tuple[str, str], list[str]] = defaultdict(list)
    queries: dict[tuple[str, str], list[str]] = defaultdict(list)
    for type_, model in sorted(REGISTRY.items()):
        if _everyone(model.PRODUCERS) or _everyone(model.CONSUMERS):
            continue
        for producer in model.PRODUCERS:
            for consumer in model.CONSUMERS:
                if model.KIND == "query":
                    queries[(producer, consumer)].append(f"rpc.{consumer}.{type_.removeprefix('rpc.')}")
                else:  # mermaid would read "<deployment_id>" as markup
                    arrows[(producer, consumer)].append(_subject(type_, model.KIND).replace("<", "{").replace(">", "}"))
    for (asker, server), names in queries.items():
        arrows[(asker, server)].append(names[0] if len(names) == 1 else f"rpc.{server}.* ({len(names)} queries)")
    parties = sorted({p for pair in arrows for p in pair}, key=lambda p: (p not in SERVICES, p))
    lines = ["```mermaid", "flowchart LR"]
    for party in parties:
        node = party.replace("-", "_")
        lines.append(f"  {node}[{party}]" if party in SERVICES else f"  {node}([{party}])")
    for (sender, receiver), subjects in sorted(arrows.items()):
        lines.append(f'  {sender.replace("-", "_")} -->|"{_label(subjects)}"| {receiver.replace("-", "_")}')
    lines.append("```")
    everyone = [
        f"`{_subject(t, m.KIND)}` ({', '.join(m.PRODUCERS) if not _everyone(m.PRODUCERS) else 'every service'}"
        f" -> {', '.join(m.CONSUMERS) if not _everyone(m.CONSUMERS) else 'every service'})"
        for t, m in sorted(REGISTRY.items())
        if _everyone(m.PRODUCERS) or _everyone(m.CONSUMERS)
    ]
    if everyone:
        lines += ["", f"Not drawn (every service takes part): {'; '.join(everyone)}."]
    return "\n".join(lines)


def _replace(text: str, begin: str, end: str, body: str) -> str:
    return re.sub(
        re.escape(begin) + r".*?" + re.escape(end), lambda _: f"{begin}\n{body}\n{end}", text, flags=re.DOTALL
    )


def rewrite(doc: Path) -> bool:
    """Replace the picture and the table between their markers in ``doc``; True if it changed."""
    text = doc.read_text()
    new = _replace(_replace(text, BEGIN, END, markdown_table()), PICTURE_BEGIN, PICTURE_END, mermaid())
    if new != text:
        doc.write_text(new)
    return new != text


if __name__ == "__main__":  # pragma: no cover
    rewrite(Path("docs/architecture.md"))
