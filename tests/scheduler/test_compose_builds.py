"""The builds of a compose deployment whose services build their own images (pure, exact): the commands the
scheduler sends for a spec, how the builders' answers add up (wait, all built, the first failure naming its
service with the others to cancel, a redelivered answer changing nothing), the snapshot the replicas then
run, and the catalogue's ``build`` field."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr, ValidationError

from berth_common.catalogue import (
    ApplicationSpec,
    BuildArg,
    GitSource,
    ImageSource,
    PushTarget,
    RegistryAuth,
    ServiceBuild,
    StartBuild,
    WebService,
    WorkerService,
)
from berth_scheduler.domain import builds as b
from berth_scheduler.domain import machine as m
from berth_scheduler.domain.builds import AllBuilt, Build, OneFailed, Waiting
from berth_scheduler.domain.machine import Rollout, State, Timeouts, transition

DEP = "3f2a9c1e-0000-4000-8000-000000000001"
APP_BUILD = "a" * 32
REPO = "https://git.example/acme/shop.git"
PUSHED = "reg.example:5000/acme/shop-api@sha256:" + "c" * 64


def _id(service: str) -> str:
    return uuid.uuid5(b.BUILD_NAMESPACE, f"{DEP}/{service}").hex


def source(**extra) -> GitSource:
    args = [BuildArg(name="TOKEN", value=SecretStr("s3cret"), secret=True)]
    return GitSource(repository=REPO, ref="main", build_args=args, build_server="b1", **extra)


def spec(src: GitSource | None = None, *, with_app_image: bool = True) -> ApplicationSpec:
    services: list = [
        WebService(name="web", port=8080, build=ServiceBuild(subdirectory="front")),
        WorkerService(
            name="api",
            build=ServiceBuild(
                subdirectory="back/api",
                dockerfile="Containerfile",
                build_args=[
                    BuildArg(name="MODE", value=SecretStr("fast")),
                    BuildArg(name="TOKEN", value=SecretStr("s3cret"), secret=True),
                ],
            ),
        ),
        WorkerService(name="db", image=ImageSource(image="postgres:16")),
    ]
    if with_app_image:
        services.append(WorkerService(name="jobs"))
    return ApplicationSpec(name="shop", source=src or source(), services=services, private_network=True)


def test_a_spec_plans_the_applications_build_then_one_per_service_with_a_build():
    assert b.planned(spec(), DEP, APP_BUILD) == [
        Build("", APP_BUILD, "berth/shop:3f2a9c1e"),
        Build("web", _id("web"), "berth/shop-web:3f2a9c1e"),
        Build("api", _id("api"), "berth/shop-api:3f2a9c1e"),
    ]
    assert b.planned(spec(with_app_image=False), DEP, None) == [
        Build("web", _id("web"), "berth/shop-web:3f2a9c1e"),
        Build("api", _id("api"), "berth/shop-api:3f2a9c1e"),
    ]
    assert b.planned(spec(), DEP, APP_BUILD) == b.planned(spec(), DEP, APP_BUILD)  # the same ids every time
    assert len(_id("api")) == 32 and _id("api") != _id("web")
    assert (b.runs_app_image(spec()), b.runs_app_image(spec(with_app_image=False))) == (True, False)
    single = ApplicationSpec(name="shop", source=source(), services=[WebService(name="web", port=80)])
    assert (b.has_service_builds(single), b.planned(single, DEP, APP_BUILD)) == (False, [])


def test_each_build_command_is_the_applications_source_with_the_services_context_dockerfile_and_args():
    s = spec()
    planned = b.planned(s, DEP, APP_BUILD)
    cmds = [b.start_command(s, x, DEP, "app-1", 900.0) for x in planned]
    common = {"deployment_id": DEP, "application_id": "app-1", "timeout_s": 900.0}
    assert cmds == [
        StartBuild(build_id=APP_BUILD, source=source(), image_tag="berth/shop:3f2a9c1e", **common),
        StartBuild(
            build_id=_id("web"),
            source=GitSource(repository=REPO, ref="main", subdirectory="front", build_server="b1"),
            image_tag="berth/shop-web:3f2a9c1e",
            service="web",
            **common,
        ),
        StartBuild(
            build_id=_id("api"),
            source=GitSource(
                repository=REPO,
                ref="main",
                subdirectory="back/api",
                dockerfile="Containerfile",
                build_args=[
                    BuildArg(name="MODE", value=SecretStr("fast")),
                    BuildArg(name="TOKEN", value=SecretStr("s3cret"), secret=True),
                ],
                build_server="b1",
            ),
            image_tag="berth/shop-api:3f2a9c1e",
            service="api",
            **common,
        ),
    ]
    assert b.start_command(s, planned[1], DEP, "app-1", 10 * 3600.0).timeout_s == 6 * 3600


def _answer(builds: list[Build], build_id: str, answer: b.Answer) -> list[Build]:
    (found,) = [x for x in builds if x.build_id == build_id]
    new = b.answered(found, answer)
    assert new is not None
    return [new if x.build_id == build_id else x for x in builds]


def test_the_deployment_waits_for_every_build_then_runs_each_services_image():
    builds = b.planned(spec(), DEP, APP_BUILD)
    assert b.outcome(builds) == Waiting(("", "web", "api"))
    builds = _answer(builds, _id("web"), b.Succeeded("berth/shop-web:3f2a9c1e"))
    assert b.outcome(builds) == Waiting(("", "api"))
    builds = _answer(builds, APP_BUILD, b.Succeeded("berth/shop:3f2a9c1e"))
    builds = _answer(builds, _id("api"), b.Succeeded("berth/shop-api:3f2a9c1e", PUSHED))
    assert b.outcome(builds) == AllBuilt(
        "berth/shop:3f2a9c1e",
        None,
        (("web", "berth/shop-web:3f2a9c1e", None), ("api", "berth/shop-api:3f2a9c1e", PUSHED)),
    )
    # a redelivered (or late) answer changes nothing
    for x in builds:
        assert b.answered(x, b.Failed("build: again")) is None
        assert b.answered(x, b.Succeeded("other")) is None


def test_the_first_failed_build_fails_the_deployment_naming_its_service_and_the_others_are_cancelled():
    builds = b.planned(spec(), DEP, APP_BUILD)
    builds = _answer(builds, APP_BUILD, b.Succeeded("berth/shop:3f2a9c1e"))
    builds = _answer(builds, _id("api"), b.Failed("build: RUN exit 3 returned 3"))
    assert b.outcome(builds) == OneFailed(
        "the build of service api failed: build: RUN exit 3 returned 3", (_id("web"),)
    )
    builds = _answer(builds, _id("web"), b.Stopped("cancelled"))
    assert b.outcome(builds) == OneFailed("the build of service api failed: build: RUN exit 3 returned 3", ())
    stopped = _answer(b.planned(spec(), DEP, APP_BUILD), APP_BUILD, b.Stopped(""))
    assert b.outcome(stopped) == OneFailed(
        "the build of the application's image was stopped: stopped by the builder", (_id("web"), _id("api"))
    )


def test_the_snapshot_runs_each_built_services_tag_or_its_pushed_reference():
    auth = RegistryAuth(registry="reg.example:5000", username="ci", password=SecretStr("pw"))
    s = spec(source(push=PushTarget(auth=auth, namespace="acme")))
    got = b.built_spec(s, (("web", "berth/shop-web:3f2a9c1e", None), ("api", "berth/shop-api:3f2a9c1e", PUSHED)))
    web, api, db, jobs = got.services
    assert web == WebService(name="web", port=8080, image=ImageSource(image="berth/shop-web:3f2a9c1e"))
    assert api == WorkerService(name="api", image=ImageSource(image=PUSHED, pull_policy="if-missing", auth=auth))
    assert (db, jobs) == (s.services[2], s.services[3])
    assert got.source == s.source and ApplicationSpec.model_validate(got.model_dump()) == got


def test_the_machine_starts_with_every_image_built_and_no_application_image():
    t = Timeouts(build_s=600, readiness_s=60, route_s=30, drain_grace_s=5)
    r = Rollout(DEP, "a1", "t1", State.QUEUED, True, t, created_at=100.0)
    r, _ = transition(r, m.Admit(), 100.0)
    r, events = transition(r, m.BuildSucceeded("", None, "images built (web: berth/shop-web:3f2a9c1e)"), 110.0)
    assert (r.state, r.image, r.run_image) == (State.STARTING, "", "")
    assert [(e.step, e.detail) for e in events] == [("build succeeded", "images built (web: berth/shop-web:3f2a9c1e)")]
    r2 = Rollout(DEP, "a1", "t1", State.BUILDING, True, t, created_at=100.0)
    _, events = transition(r2, m.BuildSucceeded("berth/shop:3f2a9c1e", None, "images built (api: x)"), 110.0)
    assert events[0].detail == "image berth/shop:3f2a9c1e; images built (api: x)"


def test_the_catalogues_build_field_dumps_as_before_while_unset_and_excludes_an_image():
    assert WorkerService(name="w").model_dump(mode="json") == {
        "kind": "worker",
        "name": "w",
        "replicas": 1,
        "command": None,
        "health_command": None,
        "limits": None,
    }
    assert WorkerService(name="w", build=ServiceBuild()).model_dump(mode="json")["build"] == {
        "subdirectory": "",
        "dockerfile": "Dockerfile",
    }
    with pytest.raises(ValidationError, match="service w has both an image and a build"):
        WebService(name="w", port=80, build=ServiceBuild(), image=ImageSource(image="x"))
    assert "s3cret" in spec(source().model_copy(update={"build_args": []})).secret_values()
