"""Autoscaling: the pure policy (hysteresis band, window, cooldown, bounded step, min/max) by exact comparison,
and the metrics service keeping the api's policy and sending `cmd.application.scale` (trigger `auto`, the
reason in words) from its readings of a busy container."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess

from nats.js.api import AckPolicy, ConsumerConfig

from berth_common.bus.streams import CMD_STREAM
from berth_common.catalogue import AutoscaleChanged, AutoscalePolicy
from berth_common.envelope import Envelope
from berth_metrics.adapters import autoscale_repo
from berth_metrics.domain.autoscale import Decision, Observation, Policy, decide
from tests.metrics.service import containers, eventually, metrics_service, run_busybox
from tests.support.images import DOCKER

CPU = Policy(min=1, max=10, metric="cpu", target=50.0, cooldown_s=120.0, window_s=60.0)


def steady(value: float | None, replicas: int = 2, now: float = 1000.0, every: float = 10.0) -> list[Observation]:
    """Observations every ``every`` seconds covering the 60 s window before ``now`` (and one older)."""
    return [Observation(now - 70 + i * every, replicas, value) for i in range(8)]


def test_above_the_band_for_the_whole_window_scales_up_to_the_target() -> None:
    # 2 replicas at 80% of a 50% target: ceil(2 * 80 / 50) = 4
    assert decide(CPU, steady(80.0), 1000.0, None) == Decision(4, "cpu 80% > 50% target for 60s: 2 -> 4 replicas")


def test_below_the_band_scales_down() -> None:
    assert decide(CPU, steady(20.0, replicas=4), 1000.0, None) == Decision(
        2, "cpu 20% < 50% target for 60s: 4 -> 2 replicas"
    )
    # one replica less at least, even when the target says the same number
    assert decide(CPU, steady(44.0, replicas=4), 1000.0, None) == Decision(
        3, "cpu 44% < 50% target for 60s: 4 -> 3 replicas"
    )


def test_inside_the_band_nothing_changes() -> None:
    # the band is 45..55 around 50
    assert decide(CPU, steady(54.0), 1000.0, None) is None
    assert decide(CPU, steady(46.0), 1000.0, None) is None
    # one observation back inside the band in the window: no decision
    mixed = steady(80.0)
    mixed[5] = Observation(mixed[5].at, 2, 52.0)
    assert decide(CPU, mixed, 1000.0, None) is None


def test_the_window_must_be_covered_and_steady() -> None:
    short = [o for o in steady(80.0) if o.at > 950.0]  # only 50 s of history
    assert decide(CPU, short, 1000.0, None) is None
    gap = steady(80.0)
    gap[6] = Observation(gap[6].at, 2, None)  # a collection without readings
    assert decide(CPU, gap, 1000.0, None) is None
    moved = steady(80.0)
    moved[4] = Observation(moved[4].at, 3, 80.0)  # the replica count changed in the window
    assert decide(CPU, moved, 1000.0, None) is None
    assert decide(CPU, [], 1000.0, None) is None


def test_cooldown() -> None:
    assert decide(CPU, steady(80.0), 1000.0, last_change_at=900.0) is None  # 100 s < 120 s
    assert decide(CPU, steady(80.0), 1000.0, last_change_at=880.0) == Decision(
        4, "cpu 80% > 50% target for 60s: 2 -> 4 replicas"
    )


def test_bounded_step_and_limits() -> None:
    # 2 replicas at 400%: the target wants 16; at most 4 more, and never above max
    assert decide(CPU, steady(400.0), 1000.0, None) == Decision(6, "cpu 400% > 50% target for 60s: 2 -> 6 replicas")
    small = Policy(min=1, max=3, metric="cpu", target=50.0, cooldown_s=0.0, window_s=60.0)
    assert decide(small, steady(400.0), 1000.0, None) == Decision(3, "cpu 400% > 50% target for 60s: 2 -> 3 replicas")
    assert decide(small, steady(400.0, replicas=3), 1000.0, None) is None  # at max already
    # 10 replicas nearly idle: at most 4 fewer, never below min
    assert decide(CPU, steady(1.0, replicas=10), 1000.0, None) == Decision(
        6, "cpu 1% < 50% target for 60s: 10 -> 6 replicas"
    )
    low = Policy(min=2, max=10, metric="memory", target=60.0, cooldown_s=0.0, window_s=60.0)
    assert decide(low, steady(1.0, replicas=3), 1000.0, None) == Decision(
        2, "memory 1% < 60% target for 60s: 3 -> 2 replicas"
    )
    assert decide(low, steady(1.0, replicas=2), 1000.0, None) is None


def test_outside_min_max_is_corrected_without_waiting_for_a_window_but_after_the_cooldown() -> None:
    policy = Policy(min=3, max=5, metric="cpu", target=50.0, cooldown_s=600.0, window_s=60.0)
    now = [Observation(1000.0, 1, 50.0)]
    assert decide(policy, now, 1000.0, last_change_at=None) == Decision(3, "1 replica(s) < min 3")
    assert decide(policy, now, 1000.0, last_change_at=390.0) == Decision(3, "1 replica(s) < min 3")
    assert decide(policy, now, 1000.0, last_change_at=990.0) is None  # a scale that failed is not repeated at once
    assert decide(policy, [Observation(1000.0, 7, None)], 1000.0, None) == Decision(5, "7 replica(s) > max 5")


async def _scale_commands(bus, app: str) -> list[dict]:
    js = bus.js
    name = f"autoscale-test-{app}"
    config = ConsumerConfig(
        name=name, durable_name=name, filter_subject="cmd.application.scale", ack_policy=AckPolicy.EXPLICIT
    )
    with contextlib.suppress(Exception):
        await js.add_consumer(CMD_STREAM, config)
    sub = await js.pull_subscribe_bind(durable=name, stream=CMD_STREAM)
    out = []
    try:
        msgs = await sub.fetch(10, timeout=0.5)
    except Exception:
        msgs = []
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    for m in msgs:
        env = Envelope.from_bytes(m.data)
        if env.data["application_id"] == app:
            out.append({"id": env.id, **env.data})
        await m.ack()
    return out


async def test_the_service_sends_a_scale_command_from_its_readings(nats_server, database, unique) -> None:
    app = f"as-{unique}"
    burn = ["sh", "-c", "while [ ! -f /tmp/stop ]; do :; done; exec sleep 3600"]
    labels = {"berth.app": app, "berth.service": "web", "berth.deployment": "d-1", "berth.team": "team-1"}
    async with (
        metrics_service(nats_server.url, database, metrics_autoscale_window_s=2.0) as running,
        containers() as made,
    ):
        made.append(run_busybox("--cpus", "0.5", labels=labels, command=burn))  # half a core: 1 -> 3 at 10 %
        policy = AutoscalePolicy(min=1, max=3, cpu_percent=10, cooldown_s=3600)
        changed = AutoscaleChanged(application_id=app, team_id="team-1", service="web", policy=policy, revision=5)
        await running.bus.publish(changed, id=f"autoscale-{app}-5")
        # an older revision arriving later changes nothing
        older = AutoscaleChanged(application_id=app, team_id="team-1", service="web", policy=None, revision=4)
        await running.bus.publish(older, id=f"autoscale-{app}-4")

        found: list[dict] = []

        async def sent() -> list[dict]:
            found.extend(await _scale_commands(running.bus, app))
            return found

        (command,) = await eventually(sent, timeout=30)
        assert command["team_id"] == "team-1"
        assert command["services"] == {"web": 3}  # one busy core against a 10% target: up to max
        assert command["trigger"] == "auto"
        assert re.fullmatch(r"cpu \d+% > 10% target for 2s: 1 -> 3 replicas", command["reason"]), command["reason"]
        assert command["id"] == f"autoscale-{command['request_id']}"

        # the cooldown (an hour) holds: no second command while the container stays busy
        await asyncio.sleep(4)
        assert await _scale_commands(running.bus, app) == []

        # autoscaling turned off: the policy is gone from the service's table
        off = AutoscaleChanged(application_id=app, team_id="team-1", service="web", policy=None, revision=6)
        await running.bus.publish(off, id=f"autoscale-{app}-6")
        autoscaler = running.ctx.extra["autoscaler"]

        async def forgotten() -> bool:
            async with autoscaler.sessionmaker() as s:
                return all(p.application_id != app for p in await autoscale_repo.active(s))

        await eventually(forgotten, timeout=10)
        subprocess.run([DOCKER, "exec", made[0], "touch", "/tmp/stop"], check=False, timeout=30)
