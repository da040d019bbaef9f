"""Built images kept for rollback: the last N successful deployments' images stay, older tags go."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import pytest

from berth_scheduler.domain.retention import BuiltImage, PulledImage, pulled_images, pulled_to_remove, tags_to_remove
from berth_scheduler.usecases.rollout import pruning
from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import web_app


def test_tags_to_remove_keeps_the_named_images_and_every_tag_of_a_kept_image():
    images = [
        BuiltImage("sha:1", ("berth/shop:a1",)),
        BuiltImage("sha:2", ("berth/shop:b2", "berth/shop:c3")),  # reused build: two deployments, one image
        BuiltImage("sha:3", ("berth/shop:d4", "other/repo:keep")),
        BuiltImage("sha:4", ()),
    ]
    assert tags_to_remove(images, {"berth/shop:c3"}, "berth/shop") == ["berth/shop:a1", "berth/shop:d4"]
    assert tags_to_remove(images, {"berth/shop:a1", "berth/shop:b2", "berth/shop:d4"}, "berth/shop") == []
    assert tags_to_remove(images, set(), "berth/other") == []


def test_an_image_of_a_deployment_not_known_to_have_finished_is_kept():
    images = [
        BuiltImage("sha:1", ("berth/shop:a1",), deployment="d1"),  # finished (failed or older success)
        BuiltImage("sha:2", ("berth/shop:b2",), deployment="d2"),  # just built, deployment not finished
        BuiltImage("sha:3", ("berth/shop:c3",), deployment=None),  # no label: decided by tags alone
    ]
    assert tags_to_remove(images, set(), "berth/shop", finished={"d1"}) == ["berth/shop:a1", "berth/shop:c3"]


def _docker(*args: str) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def labelled(busybox, app_id, unique):
    """Makes images labelled as the application's builds (as the builder does), tagged berth/<name>:t<n>."""
    repo = f"berth/ret{unique}"
    cid = _docker("create", busybox, "true")
    made: list[str] = []

    def make(n: int, deployment: str) -> str:
        tag = f"{repo}:t{n}"
        label = f"LABEL berth.application={app_id} berth.deployment={deployment} n={n}"
        _docker("commit", "--change", label, cid, tag)
        made.append(tag)
        return tag

    yield repo, make
    _docker("rm", cid)
    subprocess.run(["docker", "rmi", "-f", *made], capture_output=True)


def _tags(repo: str) -> set[str]:
    return set(_docker("images", "--format", "{{.Repository}}:{{.Tag}}", repo).split())


async def test_old_build_images_are_pruned_after_a_success(platform, labelled, app_id, unique):
    repo, make = labelled
    platform.scheduler.settings.keep_images = 2
    host = f"web-ret{unique}.localhost"
    failed = uuid.uuid4().hex
    orphan = make(0, failed)  # built for a deployment that then failed
    spec = {**web_app(orphan, "x", host, never_healthy=True), "name": f"ret{unique}"}
    await platform.deploy(app_id, spec, deployment_id=failed, drain_grace_s=0, readiness_timeout_s=2)
    assert (await platform.wait(failed, timeout=60))["type"] == "evt.deployment.failed"
    deployed = []
    for n in (1, 2, 3):
        dep = uuid.uuid4().hex
        tag = make(n, dep)  # built just before its deployment runs, as the builder does
        spec = {**web_app(tag, tag, host), "name": f"ret{unique}"}
        await platform.deploy(app_id, spec, deployment_id=dep, drain_grace_s=0)
        done = await platform.wait(dep, timeout=90)
        assert done["type"] == "evt.deployment.succeeded", done
        deployed.append(tag)
    # kept: the images of the last two successes; the oldest success's and the orphan build are gone
    # (pruning runs right after the success event: give it a moment)
    deadline = time.monotonic() + 15
    while _tags(repo) != {deployed[1], deployed[2]} and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert _tags(repo) == {deployed[1], deployed[2]}

    # the api is told which built tags went (a rollback to a deployment that ran one is refused there);
    # the event follows the removal, so it may arrive a moment after the tags are gone
    def told() -> list[str]:
        return sorted(
            tag
            for e in platform.events
            if e["type"] == "evt.application.images_pruned" and e["data"]["application_id"] == app_id
            for tag in e["data"]["images"]
        )

    deadline = time.monotonic() + 15
    while told() != sorted([orphan, deployed[0]]) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert told() == sorted([orphan, deployed[0]]), told()


async def test_a_pruning_a_restart_cut_short_is_resumed_without_a_new_success(
    platform, labelled, app_id, unique, monkeypatch
):
    """The image pruning due after a success is recorded with it: a restart that cut it short resumes it."""
    repo, make = labelled
    platform.scheduler.settings.keep_images = 1
    host = f"web-prr{unique}.localhost"
    tags = []
    for n in (1, 2):
        if n == 2:  # the pruning after the second success hangs (a server that does not answer, say)
            started = asyncio.Event()

            async def hangs(*_: object) -> list[str]:
                started.set()
                await asyncio.Event().wait()
                return []

            monkeypatch.setattr(pruning, "prune_images", hangs)
        dep = uuid.uuid4().hex
        tags.append(make(n, dep))
        spec = {**web_app(tags[-1], tags[-1], host), "name": f"prr{unique}"}
        await platform.deploy(app_id, spec, deployment_id=dep, drain_grace_s=0)
        done = await platform.wait(dep, timeout=90)
        assert done["type"] == "evt.deployment.succeeded", done
    await asyncio.wait_for(started.wait(), 15)
    await platform.scheduler.stop()  # the pruning is cut short: the first image is still there
    assert _tags(repo) == set(tags)

    monkeypatch.undo()
    await platform.scheduler.start()  # no new deployment: the pruning due is found and run
    deadline = time.monotonic() + 20
    while _tags(repo) != {tags[1]} and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert _tags(repo) == {tags[1]}


async def test_a_pruning_gives_way_to_its_own_applications_next_deployment_only(
    platform, labelled, app_id, unique, monkeypatch
):
    """Another application's deployment wakes every rollout task with its build and route events: the
    pruning goes on through those, and gives way to a deployment of its own application."""
    _, make = labelled
    platform.scheduler.settings.keep_images = 1
    runs: list[str] = []

    async def hangs(_: object, application: str, __: object) -> list[str]:
        if application != app_id:  # the other application's pruning ends at once
            return []
        runs.append("started")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            runs.append("given up")
            raise
        return []

    monkeypatch.setattr(pruning, "prune_images", hangs)
    tag = make(1, dep := uuid.uuid4().hex)
    await platform.deploy(
        app_id, {**web_app(tag, "a", f"web-gw{unique}.localhost"), "name": f"gw{unique}"}, deployment_id=dep
    )
    assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded"
    deadline = time.monotonic() + 15
    while not runs and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert runs == ["started"]

    other, other_dep = f"{app_id}o", uuid.uuid4().hex  # its events wake every task
    spec = {**web_app(tag, "b", f"web-gwo{unique}.localhost"), "name": f"gwo{unique}"}
    try:
        await platform.deploy(other, spec, deployment_id=other_dep, drain_grace_s=0)
        assert (await platform.wait(other_dep, timeout=90))["type"] == "evt.deployment.succeeded"
        await asyncio.sleep(1.0)
        assert runs[0] == "started" and "given up" not in runs, runs
    finally:
        remove_labelled(f"berth.app={other}")

    tag2 = make(2, dep2 := uuid.uuid4().hex)
    await platform.deploy(
        app_id,
        {**web_app(tag2, "c", f"web-gw{unique}.localhost"), "name": f"gw{unique}"},
        deployment_id=dep2,
        drain_grace_s=0,
    )
    assert (await platform.wait(dep2, timeout=90))["type"] == "evt.deployment.succeeded"
    assert runs[:2] == ["started", "given up"], runs


REG = "127.0.0.1:5000/acme/shop"
D1, D2, D3 = (f"{REG}@sha256:{c * 64}" for c in "123")


def test_pulled_digests_berth_pushed_go_unless_a_kept_deployment_runs_them():
    images = [
        PulledImage("sha:1", (), (D1,)),
        PulledImage("sha:2", (f"{REG}:d2", "mine/app:v1"), (D2,)),  # tagged too: the registry tag goes, not others
        PulledImage("sha:3", (), (D3,)),  # kept
        PulledImage("sha:4", ("nginx:1.27",), ("nginx@sha256:" + "9" * 64,)),  # the user's own image
    ]
    pushed = {D1, D2, D3}
    assert pulled_to_remove(images, pushed, {D3}) == [f"{REG}:d2", D1, D2]
    assert pulled_to_remove(images, pushed, {D1, D2, D3}) == []
    assert pulled_to_remove(images, set(), set()) == []  # nothing Berth pushed: nothing removed


def test_a_pulled_image_with_any_kept_reference_keeps_all_of_them():
    same = PulledImage("sha:1", (f"{REG}:d1", f"{REG}:d2"), (D1, D2))  # one image pushed for two deployments
    assert pulled_to_remove([same], {D1, D2}, {D2}) == []
    assert pulled_to_remove([same], {D1, D2}, {f"{REG}:d1"}) == []
    assert pulled_to_remove([same], {D1}, set()) == [f"{REG}:d1", f"{REG}:d2", D1]  # D2 not Berth's: left


def test_a_pulled_image_of_a_deployment_not_known_to_have_finished_is_kept():
    images = [
        PulledImage("sha:1", (), (D1,), deployment="d1"),
        PulledImage("sha:2", (), (D2,), deployment="d2"),
        PulledImage("sha:3", (), (D3,), deployment=None),
    ]
    assert pulled_to_remove(images, {D1, D2, D3}, set(), finished={"d1"}) == [D1, D3]


def test_pulled_images_reads_the_deployment_label():
    listed = [("sha:1", (f"{REG}:d1",), (D1,), {"berth.deployment": "d1"}), ("sha:2", (), (D2,), {})]
    assert pulled_images(listed) == [PulledImage("sha:1", (f"{REG}:d1",), (D1,), "d1"), PulledImage("sha:2", (), (D2,))]
