"""Cancelling builds through the real handler path: the Docker build (BuildKit and legacy) and git are really
stopped, nothing the build made is left, and the builder answers ``evt.build.cancelled``."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from berth_common.catalogue import CancelBuild
from tests.builder.support import make_repo
from tests.support.images import docker

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def processes_with(marker: str) -> list[int]:
    """Processes whose command line carries ``marker`` (the build's RUN step), this test's own excepted."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if marker in cmd and "pytest" not in cmd:
            found.append(p.pid)
    return found


async def wait_for(predicate, timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` held."""
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"{what} not within {timeout}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def leftovers(build_id: str, tag: str, marker: str) -> dict[str, str]:
    return {
        "tagged": docker("images", "-q", tag),
        "labelled": docker("images", "-q", "--filter", f"label=berth.build={build_id}"),
        "containers": "\n".join(
            line
            for line in docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}").splitlines()
            if marker in line
        ),
    }


def slow_repo(tmp_path, busybox: str, marker: str):
    repo = tmp_path / "repo"
    make_repo(repo, {"Dockerfile": f"FROM {busybox}\nRUN echo start && sleep 300 && echo {marker}\n", "x": "x"})
    return repo


@pytest.mark.parametrize("engine", ["buildkit", "legacy"])
async def test_a_running_build_is_stopped_and_leaves_nothing(
    builder_factory, busybox, tmp_path, unique, images, engine
):
    marker = f"mk{unique}{engine[:3]}"
    repo = slow_repo(tmp_path, busybox, marker)
    b = await builder_factory(allow_local_git=True, build_engine=engine)
    tag = f"berth-test/cancel-{unique}-{engine}:d1"
    images.append(tag)
    cmd = await b.start_build(build_id=f"x{unique}{engine[:3]}", repository=str(repo), image_tag=tag, no_cache=True)
    await wait_for(lambda: processes_with(marker), 120, "the slow RUN step")

    t0 = time.monotonic()
    await b.api.publish(CancelBuild(build_id=cmd.build_id, deployment_id=cmd.deployment_id, reason="by the test"))
    evt = await b.result(cmd.build_id, timeout=30)
    answered = time.monotonic() - t0
    gone = await wait_for(lambda: not processes_with(marker), 10, "the RUN step's end")
    assert evt["type"] == "evt.build.cancelled", evt
    assert evt["data"]["reason"] == "by the test" and evt["data"]["deployment_id"] == cmd.deployment_id
    assert answered < 5.0, answered
    nothing = {"tagged": "", "labelled": "", "containers": ""}
    # the legacy builder's step container is removed by the engine once its process is gone
    cleaned = await wait_for(
        lambda: leftovers(cmd.build_id, tag, marker) == nothing, 10, "the build's leftovers' removal"
    )
    await wait_for(lambda: not (b.settings.workspaces / cmd.build_id).exists(), 10, "the build's workspace removal")
    assert b.lines(cmd.deployment_id)[-1] == "build cancelled: by the test"
    row = await b.handler.repo.get(cmd.build_id)
    assert row is not None and row.status == "cancelled"
    # a redelivered start command gets the same answer again, and builds nothing
    await b.api.publish(cmd)
    again = await b.result(cmd.build_id, after=1)
    assert again["type"] == "evt.build.cancelled"
    assert not processes_with(marker)
    print(
        f"\nMEASURED {engine}: cancel answered after {answered:.2f}s, RUN step gone {answered + gone:.2f}s after, "
        f"nothing left {answered + gone + cleaned:.2f}s after"
    )


async def test_a_cancel_recorded_by_another_process_stops_the_build(builder_factory, busybox, tmp_path, unique, images):
    marker = f"mk{unique}far"
    repo = slow_repo(tmp_path, busybox, marker)
    b = await builder_factory(allow_local_git=True, cancel_poll_s=0.5)
    tag = f"berth-test/cancel-{unique}-far:d1"
    images.append(tag)
    cmd = await b.start_build(build_id=f"far{unique}", repository=str(repo), image_tag=tag, no_cache=True)
    await wait_for(lambda: processes_with(marker), 120, "the slow RUN step")
    # what the process that received the cancel command records when the build runs elsewhere
    await b.handler.repo.request_cancel(cmd.build_id, cmd.deployment_id, "elsewhere")
    evt = await b.result(cmd.build_id, timeout=10)
    assert evt["type"] == "evt.build.cancelled" and evt["data"]["reason"] == "elsewhere"
    await wait_for(lambda: not processes_with(marker), 10, "the RUN step's end")
    assert leftovers(cmd.build_id, tag, marker) == {"tagged": "", "labelled": "", "containers": ""}


async def test_cancelled_before_its_start_command_it_never_builds(builder_factory, busybox, tmp_path, unique, images):
    repo = tmp_path / "repo"
    make_repo(repo, {"Dockerfile": f"FROM {busybox}\nRUN echo never\n"})
    b = await builder_factory(allow_local_git=True)
    tag = f"berth-test/cancel-{unique}-early:d1"
    images.append(tag)
    build_id, dep = f"early{unique}", f"dep-early{unique}"
    await b.api.publish(CancelBuild(build_id=build_id, deployment_id=dep, reason="changed my mind"))
    await asyncio.sleep(0.5)  # handled: the request is on record
    cmd = await b.start_build(build_id=build_id, deployment_id=dep, repository=str(repo), image_tag=tag)
    evt = await b.result(cmd.build_id, timeout=30)
    assert evt["type"] == "evt.build.cancelled" and evt["data"]["reason"] == "changed my mind"
    assert b.handler.pipeline.git.started == 0
    assert docker("images", "-q", tag) == ""


async def test_a_build_that_had_finished_keeps_its_result_and_loses_the_tag(
    builder_factory, busybox, tmp_path, unique, images
):
    repo = tmp_path / "repo"
    make_repo(repo, {"Dockerfile": f"FROM {busybox}\nLABEL quick=1\n"})
    b = await builder_factory(allow_local_git=True)
    tag = f"berth-test/cancel-{unique}-done:d1"
    images.append(tag)
    cmd = await b.start_build(build_id=f"done{unique}", repository=str(repo), image_tag=tag)
    assert (await b.result(cmd.build_id))["type"] == "evt.build.succeeded"
    assert docker("images", "-q", tag) != ""
    await b.api.publish(CancelBuild(build_id=cmd.build_id, deployment_id=cmd.deployment_id))
    await wait_for(lambda: docker("images", "-q", tag) == "", 10, "the tag's removal")
    await asyncio.sleep(0.3)
    assert [e["type"] for e in b.events if e["data"]["build_id"] == cmd.build_id] == ["evt.build.succeeded"]
    row = await b.handler.repo.get(cmd.build_id)
    assert row is not None and row.status == "succeeded"
    assert row.image_id  # the result itself is kept
