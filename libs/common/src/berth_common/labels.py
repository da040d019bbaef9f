"""The ``berth.*`` labels Berth puts on what it makes in Docker, and the filters that find them again.

The scheduler labels every container and network it makes; the builder labels every image it builds;
the metrics service and the scheduler read those labels back (whose container a reading is, which images
an application may keep). One list, so the writer and the readers cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "berth."

# On containers (set by the scheduler).
APP = "berth.app"  # the application id
SERVICE = "berth.service"  # the service of the application
DEPLOYMENT = "berth.deployment"  # the deployment that made it (also on images: the one it was built for)
REPLICA = "berth.replica"  # 1..n within the service
KIND = "berth.kind"  # web or worker
MANAGED = "berth.managed"  # "true" on every container and network Berth manages
TEAM = "berth.team"  # the owning team: who a metric, an alert or a server outage concerns

# On volumes (set by the scheduler), with ``APP`` (the application or database id) and ``TEAM``.
VOLUME = "berth.volume"  # the volume's name in the spec

# On images (set by the builder).
BUILD = "berth.build"  # the build id: what a stopped build's clean-up removes
APPLICATION = "berth.application"  # the application id: what image retention looks at
COMMIT = "berth.commit"
CACHE_KEY = "berth.cache-key"


def label_filter(labels: Mapping[str, str]) -> dict[str, list[str]]:
    """The Engine API ``filters`` that select what carries every one of ``labels`` (in a stable order)."""
    return {"label": [f"{key}={value}" for key, value in sorted(labels.items())]}
