"""Where an application's variables come from, and which one wins. Pure, no I/O.

A deployment's variables are merged from layers, each later one overriding the earlier by name (runtime
variables and build args separately):

    environment groups (in the order they were attached)  <  the environment  <  the application

A variable keeps the secret flag of the layer it comes from; an overridden one is gone entirely (its value
is not sent). The merged list keeps the position where a name first appeared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from berth_api.domain.applications import Variable


@dataclass(frozen=True)
class Layer:
    """One source of variables: ``origin`` is ``group:<name>``, ``environment`` or ``application``."""

    origin: str
    runtime: list[Variable]
    build: list[Variable]


@dataclass(frozen=True)
class Resolved:
    variable: Variable
    origin: str
    overrides: tuple[str, ...]  # the origins it hides, lowest first


def resolve(layers: Iterable[Layer], kind: str) -> list[Resolved]:
    """The winning variable of each name, in first-appearance order, with where it came from."""
    found: dict[str, Resolved] = {}
    for layer in layers:
        for var in layer.runtime if kind == "runtime" else layer.build:
            prior = found.get(var.name)
            hidden = (*prior.overrides, prior.origin) if prior is not None else ()
            found[var.name] = Resolved(var, layer.origin, hidden)
    return list(found.values())


def merge(layers: Iterable[Layer], kind: str) -> list[Variable]:
    return [r.variable for r in resolve(layers, kind)]
