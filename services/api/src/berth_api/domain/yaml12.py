"""YAML 1.2's core schema for PyYAML's safe loader: compose reads a file as YAML 1.2, PyYAML as YAML 1.1.

Where they differ, a file would mean one thing to Berth and another to the compose parser and the engine:
YAML 1.1's base 60 makes the port mapping ``22222:22`` the integer 1333342, its ``0o`` / ``0x`` / ``_``
number forms are its own, and its booleans ``no`` / ``yes`` / ``on`` / ``off`` make ``restart: no`` the
boolean false, which compose refuses ("restart must be a string"), and ``FLAG: yes`` the value ``true``.
In 1.2 only ``true`` and ``false`` (any case) are booleans. Pure.
"""

from __future__ import annotations

import re

import yaml

_YAML_1_1_ONLY = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")


def yaml_1_2(loader: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """Give ``loader`` YAML 1.2's core schema for booleans and numbers (null is alike in both)."""
    loader.yaml_implicit_resolvers = {
        first: [(tag, regex) for tag, regex in resolvers if tag not in _YAML_1_1_ONLY]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
    )
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+.0123456789"),
    )
    return loader
