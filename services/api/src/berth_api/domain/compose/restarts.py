"""A compose service's restart policy: ``restart`` (``no``, ``always``, ``unless-stopped``,
``on-failure[:<retries>]``) or ``deploy.restart_policy``, which takes its place as ``docker compose up``
reads it (Dokploy's erpnext and frappe blueprints: ``condition: none`` for their one-shot jobs, ``always``
for the rest). Its ``condition`` is compose's (``none``, ``on-failure``, ``any``; compose also reads Docker's
``no``, ``always`` and ``unless-stopped``; left out: the specification's ``any``) and becomes Docker's
restart policy (``no``, ``on-failure``, ``always``, ``unless-stopped``); its ``max_attempts`` is the number of
restarts Docker makes on failure (``MaximumRetryCount``, 0 for no limit), which Docker counts only for
``on-failure``. ``delay`` and ``window`` are a Swarm's: Docker restarts with its own back-off, so they are
listed in the notes as not carried, and so is a ``max_attempts`` of another condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth_api.domain.compose.keys import RESTARTS, ComposeRefusal

# compose's ``deploy.restart_policy.condition`` (and the engine's names compose reads there too) as Docker's
CONDITIONS = {
    "none": "no",
    "no": "no",
    "on-failure": "on-failure",
    "any": "always",
    "always": "always",
    "unless-stopped": "unless-stopped",
}
MAX_RETRIES = 2**31 - 1


def restart(name: str, svc: Mapping[str, Any], notes: list[str]) -> tuple[str, int | None]:
    """The service's Docker restart policy and, for ``on-failure``, the restarts it makes (None: Berth's
    default). Raises ``ComposeRefusal`` naming the spot of a value Docker has no policy for."""
    given = (svc.get("deploy") or {}).get("restart_policy")
    if not given:
        return _plain(name, svc.get("restart"))
    spot = f"services/{name}/deploy/restart_policy"
    if not isinstance(given, Mapping):
        raise ComposeRefusal(spot, "a mapping of condition, max_attempts, delay and window")
    for key in given:
        if key not in ("condition", "max_attempts", "delay", "window"):
            raise ComposeRefusal(f"{spot}/{key}", "Berth does not carry this compose key; remove it")
    condition = given.get("condition") or "any"
    if condition not in CONDITIONS:
        raise ComposeRefusal(f"{spot}/condition", f"one of {', '.join(CONDITIONS)}")
    policy = CONDITIONS[condition]
    if svc.get("restart") and str(svc["restart"]) != policy:
        notes.append(f"services/{name}/restart: not carried: deploy.restart_policy takes its place, as in compose")
    for key in ("delay", "window"):
        if given.get(key) is not None:
            notes.append(f"{spot}/{key}: not carried: Docker restarts a container with its own back-off")
    attempts = given.get("max_attempts")
    if attempts is None:
        return policy, None
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 0 <= attempts <= MAX_RETRIES:
        raise ComposeRefusal(f"{spot}/max_attempts", f"a whole number from 0 (no limit) to {MAX_RETRIES}")
    if policy != "on-failure":
        notes.append(f"{spot}/max_attempts: not carried: Docker limits the restarts of the condition on-failure only")
        return policy, None
    return policy, attempts


def _plain(name: str, value: Any) -> tuple[str, int | None]:
    """``restart``: a policy of ``RESTARTS``, ``on-failure`` with its retries after a colon."""
    policy, colon, count = str(value or "no").partition(":")
    if policy not in RESTARTS:
        raise ComposeRefusal(f"services/{name}/restart", f"one of {', '.join(RESTARTS)}")
    if not colon:
        return policy, None
    if policy != "on-failure" or not count.isdigit() or int(count) > MAX_RETRIES:
        raise ComposeRefusal(
            f"services/{name}/restart",
            f"on-failure:<retries> (a whole number up to {MAX_RETRIES}) or one of {', '.join(RESTARTS)}",
        )
    return policy, int(count)
