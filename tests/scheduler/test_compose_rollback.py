"""A rollback of a compose application whose services have images of their own (exact data): what a
deployment records per service, the snapshot a rollback to it runs (each built service on the image built
then, no build; an image service on that deployment's digest when it named another image; an unchanged one
as it is), a refusal naming a built service without an image there, the start command's dump, and the
scheduler's start handler on a real Postgres (no build asked, the replicas start at once)."""

from __future__ import annotations

import uuid

import pytest

from berth_common.catalogue import ApplicationSpec, StartDeployment
from berth_scheduler.adapters import build_records, store
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.adapters.tables import (
    containers,
    deployment_builds,
    deployment_images,
    deployments,
    removals,
    route_ops,
    routes,
    scales,
)
from berth_scheduler.domain import service_images
from berth_scheduler.domain.service_images import ServiceImage
from tests.scheduler.test_compose_build_handlers import handlers, of_type, run, states
from tests.support.bus_helpers import prepare_schema

SCHEMA = "sched_compose_rollback"
REPO = "https://git.example/acme/shop.git"
DIGEST = "sha256:" + "ab" * 32


def spec_of(*, push: bool = False, db_image: str = "postgres:16") -> ApplicationSpec:
    source: dict = {"kind": "git", "repository": REPO, "ref": "main"}
    if push:
        source["push"] = {"auth": {"registry": "registry.example:5000", "username": "ci", "password": "pw"}}
    return ApplicationSpec.model_validate(
        {
            "name": "shop",
            "source": source,
            "services": [
                {"kind": "web", "name": "web", "port": 8080, "build": {"subdirectory": "front"}},
                {"kind": "worker", "name": "api", "build": {"subdirectory": "api"}},
                {"kind": "worker", "name": "db", "image": {"image": db_image, "pull_policy": "always"}},
                {"kind": "worker", "name": "cache", "image": {"image": "redis:7"}},
            ],
            "private_network": True,
        }
    )


def own_images(spec: ApplicationSpec) -> dict[str, dict | None]:
    return {s.name: (s.image.model_dump(mode="json") if s.image else None) for s in spec.services}


RAN = [
    ServiceImage("web", "berth/shop-web:1a2b3c4d", "berth/shop-web:1a2b3c4d"),
    ServiceImage("api", "berth/shop-api:1a2b3c4d", "berth/shop-api:1a2b3c4d"),
    ServiceImage("db", "postgres:15", f"postgres@{DIGEST}"),
    ServiceImage("cache", "redis:7", f"redis@{DIGEST}"),
]


def test_what_a_service_ran_is_its_digest_or_its_name() -> None:
    assert service_images.ran("db", "postgres:16", f"postgres@{DIGEST}") == ServiceImage(
        "db", "postgres:16", f"postgres@{DIGEST}"
    )
    assert service_images.ran("web", "berth/shop-web:1a2b3c4d", "") == ServiceImage(
        "web", "berth/shop-web:1a2b3c4d", "berth/shop-web:1a2b3c4d"
    )


def test_a_rollback_runs_the_built_images_and_a_changed_images_digest() -> None:
    rolled = service_images.rolled_back(spec_of(), RAN)
    assert rolled.missing == () and rolled.refusal is None
    assert own_images(rolled.spec) == {
        "web": {"kind": "image", "image": "berth/shop-web:1a2b3c4d"},
        "api": {"kind": "image", "image": "berth/shop-api:1a2b3c4d"},
        "db": {"kind": "image", "image": f"postgres@{DIGEST}"},  # named postgres:15 then: that one, by digest
        "cache": {"kind": "image", "image": "redis:7"},  # the same name then: left as it is (kept if unchanged)
    }
    assert [s.build for s in rolled.spec.services] == [None] * 4
    assert service_images.builds_nothing(rolled.spec)
    assert not service_images.builds_nothing(spec_of())


def test_a_pushed_build_is_pulled_with_the_push_registrys_credentials() -> None:
    pushed = f"registry.example:5000/berth/shop-web@{DIGEST}"
    rolled = service_images.rolled_back(spec_of(push=True), [ServiceImage("web", pushed, pushed), *RAN[1:]])
    web = rolled.spec.services[0].image
    assert web is not None and (web.image, web.auth is not None and web.auth.registry) == (
        pushed,
        "registry.example:5000",
    )
    api = rolled.spec.services[1].image
    assert api is not None and api.auth is None  # Berth's own tag on the build server


def test_a_built_service_without_an_image_in_that_deployment_is_named() -> None:
    rolled = service_images.rolled_back(spec_of(), RAN[2:])
    assert rolled.missing == ("web", "api")
    assert rolled.refusal == (
        "cannot roll back: the compose service(s) web, api build their own image and ran none in the deployment "
        "rolled back to"
    )


def test_the_start_commands_dump_names_the_deployment_only_for_a_rollback() -> None:
    plain = StartDeployment(deployment_id="d2", application_id="a", team_id="t", spec=spec_of())
    assert "images_of" not in plain.model_dump(mode="json")
    back = plain.model_copy(update={"images_of": "d1"})
    assert back.model_dump(mode="json")["images_of"] == "d1"
    assert StartDeployment.model_validate(back.model_dump(mode="json")).images_of == "d1"


@pytest.fixture
async def sessionmaker(database):
    from berth_common.db import make_engine, make_sessionmaker

    tables = (deployments, deployment_builds, deployment_images, containers, routes, route_ops, removals, scales)
    await prepare_schema(database, SCHEMA, *tables)
    engine = make_engine(database, SCHEMA, pool_size=4)
    yield make_sessionmaker(engine)
    await engine.dispose()


def start(app: str, images_of: str | None) -> StartDeployment:
    return StartDeployment(
        deployment_id=str(uuid.uuid4()), application_id=app, team_id="team-1", spec=spec_of(), images_of=images_of
    )


async def test_the_start_handler_runs_the_recorded_images_without_a_build(sessionmaker, unique):
    earlier = str(uuid.uuid4())
    async with sessionmaker() as s, s.begin():
        await build_records.record_images(s, earlier, RAN[:2])
        await build_records.record_images(s, earlier, RAN)  # a repeated step records the same
        assert sorted(await build_records.images_of(s, earlier), key=lambda i: i.service) == sorted(
            RAN, key=lambda i: i.service
        )
    msg = start(f"rb-{unique}", earlier)
    staged = await run(sessionmaker, handlers().start, msg)
    assert of_type(staged, "cmd.build.start") == []
    progressed = of_type(staged, "evt.deployment.progressed")
    assert [(p["state"], p["step"], p["detail"]) for p in progressed] == [
        ("queued", "queued", "next to run"),
        ("starting", "starting replicas", "each service runs an image of its own"),
    ]
    assert await states(sessionmaker, msg.deployment_id) == ("starting", {})
    async with sessionmaker() as s:
        row = await store.load(s, msg.deployment_id)
    assert (row.needs_build, row.build_id, row.image) == (False, None, None)
    assert own_images(Sealer("test-secret").open(row.spec)) == own_images(
        service_images.rolled_back(spec_of(), RAN).spec
    )


async def test_the_start_handler_fails_a_rollback_missing_a_built_image(sessionmaker, unique):
    msg = start(f"rb-{unique}", str(uuid.uuid4()))  # a deployment that recorded nothing
    staged = await run(sessionmaker, handlers().start, msg)
    assert of_type(staged, "cmd.build.start") == []
    (failed,) = of_type(staged, "evt.deployment.failed")
    assert failed["reason"] == (
        "cannot roll back: the compose service(s) web, api build their own image and ran none in the deployment "
        "rolled back to"
    )
