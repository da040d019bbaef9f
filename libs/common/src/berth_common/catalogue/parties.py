"""Who sends and who receives each message: lookups over the catalogue's ``PRODUCERS`` and ``CONSUMERS``.

A party is one of Berth's services (named like its directory under ``services/``), the ``cli``, or an
``operator``: a person or a tool outside Berth (a monitoring probe, the ``nats`` command, a test) that sends
the liveness probe or watches dead letters. A service receives the commands and events it consumes with
``Bus.consume`` and answers the queries it serves with ``Bus.serve``; ``tests/common/test_catalogue_map.py``
reads the code of every service and fails when it disagrees with these tables.
"""

from __future__ import annotations

from collections.abc import Mapping

from berth_common.catalogue.base import REGISTRY, Message

SERVICES = ("api", "builder", "scheduler", "proxy-sync", "metrics", "notifier")
PARTIES = (*SERVICES, "cli", "operator")


def consumed_by(service: str, registry: Mapping[str, type[Message]] | None = None) -> tuple[type[Message], ...]:
    """The commands and events that name ``service`` among their consumers, ordered by type."""
    entries = REGISTRY if registry is None else registry
    return tuple(
        model
        for type_, model in sorted(entries.items())
        if model.KIND in ("command", "event") and service in model.CONSUMERS
    )


def served_by(service: str, registry: Mapping[str, type[Message]] | None = None) -> tuple[type[Message], ...]:
    """The queries ``service`` answers (on ``rpc.<service>.<name>``), ordered by type."""
    entries = REGISTRY if registry is None else registry
    return tuple(
        model for type_, model in sorted(entries.items()) if model.KIND == "query" and service in model.CONSUMERS
    )
