"""The task containers of an application's Swarm services, for its runtime logs and follows
(``usecases/runtime_logs.py``, ``usecases/log_follow.py``).

Each Swarm the application was placed on is asked (its manager, through its server's SSH-forwarded socket)
for the application's services of the asking team and their tasks; every task container is then read like
any replica, through the connection of the server its node is (``domain/swarm_app.task_containers``), so
its lines have the same format, filters and follow. A manager that does not answer, or a task on a node
Berth does not manage, is named in ``unreachable``.
"""

from __future__ import annotations

from typing import Any

from berth_common import labels
from berth_common.docker import DockerUnavailable
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.adapters.swarm import SwarmEngine, SwarmError
from berth_scheduler.domain import swarm_app as dom
from berth_scheduler.usecases.swarm_placement import swarms_placed

NOT_MANAGED = "a Swarm node Berth does not manage runs a task of the application (its lines are not read)"


async def task_containers(
    fleet: Any, team_id: str, application_id: str, service: str = ""
) -> tuple[list[dom.TaskContainer], dict[str, str]]:
    """The containers of the application's Swarm tasks (of ``service``, or all) whose node Berth reaches,
    and what could not be asked (server id, or Swarm node id, -> why)."""
    async with fleet.sessionmaker() as s:
        places = await swarms_placed(s, team_id, application_id)
    wanted = {labels.APP: application_id, labels.TEAM: team_id, **({labels.SERVICE: service} if service else {})}
    found: list[dom.TaskContainer] = []
    unreachable: dict[str, str] = {}
    for place in places:
        try:
            manager = SwarmEngine(await fleet.socket(place.manager_server_id), timeout=20.0)
            for svc in await manager.services(wanted):
                tasks = await manager.tasks(str((svc.get("Spec") or {}).get("Name", "")))
                found += dom.task_containers(svc, tasks, dict(place.nodes))
        except (DockerUnavailable, ServerRefusedError, SwarmError, ConnectionError, OSError) as exc:
            unreachable[place.manager_server_id] = f"the Swarm's manager did not answer: {exc}"[:300]
    for task in found:
        if task.server_id is None:
            unreachable[task.node_id] = NOT_MANAGED
    return [t for t in found if t.server_id is not None], unreachable
