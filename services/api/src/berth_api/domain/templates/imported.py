"""What an import answers: the Berth template, what could not be carried over (by name) and notes on what
was carried over differently; plus helpers the two importers share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from berth_api.domain.templates.interp import Ref, all_refs, rewrite
from berth_api.domain.templates.model import Template, Variable


@dataclass(frozen=True)
class ImportResult:
    template: Template
    not_carried: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")
    return slug or "template"


def headline(name: str) -> str:
    return " ".join(w.capitalize() for w in re.split(r"[-_\s]+", name) if w)


@dataclass
class Inputs:
    """Ordinary compose references (``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}``) turned into
    input variables; a default may itself reference another variable."""

    variables: dict[str, Variable] = field(default_factory=dict)

    def register(self, ref: Ref, known: set[str]) -> None:
        if ref.name in known:
            return
        options: dict[str, Any] = {}
        if ref.default is not None:
            for inner in all_refs(ref.default):
                self.register(inner, known)
            options["default"] = rewrite(ref.default, lambda r: False)
        elif ref.required:
            options["required"] = True
        description = ref.argument if ref.required and ref.argument else None
        old = self.variables.get(ref.name)
        if old is not None and (old.options or not options):
            return
        self.variables[ref.name] = Variable(ref.name, "input", options, description)
