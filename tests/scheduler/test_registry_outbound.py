"""Before an engine pulls from a team's registry, the registry's addresses pass the team's outbound rule."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases.rollout.image_pull import PullFailedError, check_registry

RULE = "; an admin can allow it (BERTH_OUTBOUND_ALLOW, or the team's outbound allowance)"


def _rt(**settings: Any) -> Any:
    return SimpleNamespace(settings=SchedulerSettings(outbound_allow="", **settings))


@pytest.mark.parametrize(
    ("registry", "reason"),
    [
        ("127.0.0.1:5000", "registry 127.0.0.1:5000 is refused: outbound rule: 127.0.0.1 is a loopback address"),
        ("localhost:5000", "registry localhost:5000 is refused: outbound rule: localhost is a loopback address"),
        (
            "169.254.169.254",
            "registry 169.254.169.254 is refused: outbound rule: 169.254.169.254 is a cloud metadata address",
        ),
    ],
)
async def test_a_refused_registry_fails_the_pull_before_the_engine_is_asked(registry: str, reason: str) -> None:
    with pytest.raises(PullFailedError) as caught:
        await check_registry(_rt(), registry, "team-1")
    assert str(caught.value) == reason + RULE


async def test_the_teams_allowance_docker_hub_and_the_platforms_mirrors_pass() -> None:
    allowed = _rt(outbound_allow_teams={"team-1": ["127.0.0.1"]})
    await check_registry(allowed, "127.0.0.1:5000", "team-1")
    with pytest.raises(PullFailedError):
        await check_registry(allowed, "127.0.0.1:5000", "team-2")
    await check_registry(_rt(), "docker.io", "team-2")
    mirrored = _rt(image_map="busybox=127.0.0.1:5000/mirror/busybox:1")
    await check_registry(mirrored, "127.0.0.1:5000", "team-2")
