"""Which replicas of a live version to start again: the ones an engine restart left exited.

Docker restarts a container by its restart policy while the engine runs, but an engine that crashed
(SIGKILL, power loss) stops, on its next start, the containers it finds from before and does not start
them again (Docker 20.10 without ``live-restore``: they stay ``exited``, code 137). A live version's
replica that is exited although its policy asks for it to run is therefore started again by the
scheduler, as the engine would have done had it not crashed: ``always`` and ``unless-stopped`` always,
``on-failure`` after a failure (a non-zero exit code), ``no`` never. Berth removes every replica it stops
for good (an old version, a scale-down) and forgets it, and no application with a deployment in flight is
touched, so a replica found here is one the platform still means to run.
"""

from __future__ import annotations

from typing import Any

WANTS_RUNNING = frozenset({"always", "unless-stopped"})


def should_start(info: dict[str, Any] | None) -> bool:
    """Whether the container (``GET /containers/{name}/json``) is to be started again."""
    if not info:
        return False
    state = info.get("State") or {}
    if state.get("Status") != "exited" or state.get("Running"):
        return False
    policy = ((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    if policy in WANTS_RUNNING:
        return True
    return policy == "on-failure" and int(state.get("ExitCode") or 0) != 0
