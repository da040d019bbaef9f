"""Secret values on their way from the api to a container: sealed on the bus, plain only where used.

The fast tests check each point of use (the scheduler's container env, the builder's secret mount, the
redaction of both). The end-to-end test runs the real scheduler, builder and proxy-sync in-process on a
real nats-server, Postgres, Docker and Traefik, deploys an application with a secret env var and a secret
build arg as the api would, and then looks for the plaintext everywhere it must not be: every message of
every Berth stream (read back with JetStream), every byte seen on the bus, the nats-server's store on
disk, the services' logs, their tables, and the built image's history. It must be in the container's env.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from berth_common.bus import subscriptions_confirmed
from berth_common.catalogue import ApplicationSpec, GitSource, StartBuild, StartDeployment
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.domain import names
from berth_scheduler.domain.containers import container_spec
from berth_scheduler.usecases.rollout.apply import secrets_of, start_build_command

RUNTIME_SECRET = "rt-s3cr3t-" + uuid.uuid4().hex
BUILD_SECRET = "bt-s3cr3t-" + uuid.uuid4().hex
TERMINAL = ("evt.deployment.succeeded", "evt.deployment.failed", "evt.deployment.cancelled")


def forms(secret: str) -> list[bytes]:
    """The plaintext and the encodings a careless serialisation would give it."""
    raw = secret.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"=")]


def leaks(blob: bytes, *secrets: str) -> list[str]:
    return [f"{s[:6]}... as {f[:12]!r}" for s in secrets for f in forms(s) if f in blob]


def spec_dict(repository: str = "https://example.invalid/shop.git") -> dict[str, Any]:
    return {
        "name": "shop",
        "source": {
            "kind": "git",
            "repository": repository,
            "ref": "main",
            "build_args": [
                {"name": "BUILD_TOKEN", "value": BUILD_SECRET, "secret": True},
                {"name": "PUBLIC_MODE", "value": "visible-mode"},
            ],
        },
        "services": [{"kind": "web", "name": "web", "port": 8080}],
        "env": [{"name": "APP_SECRET", "value": RUNTIME_SECRET, "secret": True}, {"name": "MODE", "value": "prod"}],
    }


def from_the_wire(cmd: Any) -> Any:
    raw = cmd.model_dump_json().encode()
    assert leaks(raw, RUNTIME_SECRET, BUILD_SECRET) == []
    return type(cmd).model_validate_json(raw)


def test_the_scheduler_puts_the_plaintext_in_the_container_env_only():
    cmd = from_the_wire(StartDeployment(deployment_id="d1", application_id="a1", team_id="t1", spec=spec_dict()))
    assert cmd.spec.env[0].sealed  # still sealed in memory
    body = container_spec("a1", "d1", cmd.spec, cmd.spec.services[0], 1, "berth/shop:d1", host_port=40000).body
    assert body["Env"] == [f"APP_SECRET={RUNTIME_SECRET}", "MODE=prod", "PORT=8080"]
    rest = json.dumps({k: v for k, v in body.items() if k != "Env"}).encode()
    assert leaks(rest, RUNTIME_SECRET, BUILD_SECRET) == []


def test_the_scheduler_redacts_with_the_unsealed_values_and_forwards_build_args_sealed():
    cmd = from_the_wire(StartDeployment(deployment_id="d1", application_id="a1", team_id="t1", spec=spec_dict()))
    sealer = Sealer("scheduler-test-key")
    stored = sealer.seal(cmd.spec)  # the scheduler's row
    assert leaks(json.dumps(stored).encode(), RUNTIME_SECRET, BUILD_SECRET) == []
    row = SimpleNamespace(
        spec=stored, build_id="b1", id="d1", application_id="a1", team_id="t1", timeouts={"build_s": 60}
    )
    secrets = secrets_of(sealer, row)
    assert sorted(secrets) == sorted([RUNTIME_SECRET, BUILD_SECRET])
    said = f"step failed: APP_SECRET={RUNTIME_SECRET} token {BUILD_SECRET}"
    assert names.redact(said, secrets) == f"step failed: APP_SECRET={names.REDACTED} token {names.REDACTED}"
    build = start_build_command(row, sealer)
    assert build.image_tag == names.image_tag("shop", "d1")
    raw = build.model_dump_json().encode()
    assert leaks(raw, RUNTIME_SECRET, BUILD_SECRET) == [] and raw.count(b"sealed:v1:") == 1


def test_the_builder_serves_the_plaintext_to_the_secret_mount_only():
    from berth_builder.domain.request import build_request
    from berth_builder.settings import BuilderSettings
    from berth_builder.usecases.build_inputs import secrets_of as build_secrets
    from berth_builder.usecases.build_inputs import validate

    source = ApplicationSpec.model_validate(spec_dict("https://example.com/shop.git")).source
    assert isinstance(source, GitSource)
    cmd = from_the_wire(
        StartBuild(build_id="b1", deployment_id="d1", application_id="a1", source=source, image_tag="berth/shop:d1")
    )
    assert build_secrets(cmd) == [BUILD_SECRET]
    inputs = validate(cmd, BuilderSettings())
    assert {a.name: (a.value, a.secret) for a in inputs.args} == {
        "BUILD_TOKEN": (BUILD_SECRET, True),
        "PUBLIC_MODE": ("visible-mode", False),
    }
    assert BUILD_SECRET not in repr(inputs)
    request = build_request(tag="t:1", dockerfile="Dockerfile", args=inputs.args, labels={}, engine="buildkit")
    assert dict(request.buildargs) == {"PUBLIC_MODE": "visible-mode"}
    assert request.secret_names == ("BUILD_TOKEN",)
    assert leaks(json.dumps(request.query()).encode(), BUILD_SECRET) == []


def test_the_builder_refuses_a_build_arg_that_does_not_open():
    from berth_builder.domain.source import InvalidInput
    from berth_builder.settings import BuilderSettings
    from berth_builder.usecases.build_inputs import validate

    source = ApplicationSpec.model_validate(spec_dict("https://example.com/shop.git")).source
    wire = StartBuild(
        build_id="b1", deployment_id="d1", application_id="a1", source=source, image_tag="berth/shop:d1"
    ).model_dump(mode="json")
    wire["source"]["build_args"][0]["name"] = "OTHER_NAME"  # a sealed value moved to another arg
    with pytest.raises(InvalidInput) as err:
        validate(StartBuild.model_validate(wire), BuilderSettings())
    assert err.value.field == "source.build_args.OTHER_NAME" and "cannot be read" in str(err.value)


# --- end to end ----------------------------------------------------------------------------------------


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout


def dockerfile(base: str) -> str:
    digest = hashlib.sha256(BUILD_SECRET.encode()).hexdigest()
    return "\n".join(
        [
            f"FROM {base}",
            "ARG PUBLIC_MODE",
            'RUN echo "mode=$PUBLIC_MODE"',
            # the step sees the right value, and printing it is redacted by the builder
            "RUN --mount=type=secret,id=BUILD_TOKEN "
            f'test "$(sha256sum < /run/secrets/BUILD_TOKEN | cut -c1-64)" = "{digest}" && echo build-secret-ok '
            "&& echo leaked: $(cat /run/secrets/BUILD_TOKEN)",
            "COPY index.html /www/index.html",
            'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
        ]
    )


async def stream_messages(js: Any, stream: str) -> list[bytes]:
    """Every message still in ``stream``, as raw bytes (subject, headers and data)."""
    info = await js.stream_info(stream)
    out = []
    if info.state.messages:
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except Exception:  # a deleted (acknowledged) sequence
                continue
            out.append(msg.subject.encode() + b"\n" + json.dumps(msg.headers or {}).encode() + b"\n" + msg.data)
    return out


async def table_rows(admin_url: str, schemas: tuple[str, ...]) -> dict[str, bytes]:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'",
            list(schemas),
        )
        found = {}
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            rows = await conn.fetch(f"SELECT row_to_json(t)::text AS j FROM {name} t")
            found[name] = "\n".join(r["j"] for r in rows).encode()
        return found
    finally:
        await conn.close()


@contextlib.contextmanager
def debug_json_logs() -> Any:
    """Every service's log lines at DEBUG, as JSON, on stderr (captured by the test); then as before."""
    import structlog

    from berth_common.logging import configure_logging

    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("security-test", json=True, level="DEBUG")
    try:
        yield
    finally:
        structlog.configure(**config)
        root.handlers[:], root.level = handlers, level


@dataclass
class Wire:
    """Every message that crosses the bus (a core subscription to ``>``), kept as raw bytes."""

    raw: list[bytes] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    async def on_message(self, msg: Any) -> None:
        self.raw.append(msg.subject.encode() + b"\n" + json.dumps(msg.headers or {}).encode() + b"\n" + msg.data)
        if msg.subject.startswith("evt."):
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(msg.data))

    async def event(self, pred: Any, what: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if pred(e):
                    return e
            await asyncio.sleep(0.05)
        seen = [(e.get("type"), e.get("data", {}).get("step")) for e in self.events][-30:]
        raise AssertionError(f"no {what} within {timeout}s; seen: {seen}")


def terminal(deployment_id: str) -> Any:
    def pred(e: dict[str, Any]) -> bool:
        return e.get("type") in TERMINAL and e["data"].get("deployment_id") == deployment_id

    return pred


async def connected_bus(service: str, url: str) -> Any:
    from berth_common.bus import Bus

    bus = Bus(service, url)
    for _ in range(100):
        try:
            await bus.connect()
            return bus
        except Exception:
            await asyncio.sleep(0.1)
    raise AssertionError("bus not reachable")


@pytest.mark.slow
@pytest.mark.docker
async def test_secrets_are_plain_only_in_the_container(nats_server, database, unique, tmp_path, capfd):
    import nats

    from berth_common.bus.streams import CMD_STREAM, DLQ_STREAM, EVT_STREAM, LOG_STREAM
    from berth_common.db.provision import provision
    from berth_common.envelope import Envelope
    from berth_scheduler.settings import SchedulerSettings
    from tests.builder.support import GitDaemon, make_repo, publish_bare, start_builder, stop_builder
    from tests.scheduler.platform import Scheduler
    from tests.support.images import busybox_image

    if subprocess.run(["docker", "version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no Docker engine")
    base = busybox_image()
    app_id, name = f"sec-{unique}", f"s{unique}"
    wire = Wire()
    spy = await nats.connect(nats_server.url)
    await spy.subscribe(">", cb=wire.on_message)
    await subscriptions_confirmed(spy)
    daemon = GitDaemon(tmp_path / "served").start()
    scheduler = api = builder = None
    try:
        with debug_json_logs():
            try:
                urls = await provision(database, "test-secret", ("scheduler",))
                scheduler = Scheduler(
                    SchedulerSettings(
                        nats_url=nats_server.url,
                        database_url=urls["scheduler"],
                        secret_key="test-secret",
                        http_port=0,
                        readiness_timeout_s=30,
                        readiness_interval_s=0.1,
                        drain_grace_s=0.5,
                    )
                )
                await scheduler.start()
                builder = await start_builder(nats_server.url, database, tmp_path / "builder")
                api = await connected_bus("api", nats_server.url)

                repo = tmp_path / "repo"
                make_repo(repo, {"Dockerfile": dockerfile(base), "index.html": f"served {unique}\n"})
                publish_bare(repo, daemon.base, "app.git")
                spec = {**spec_dict(daemon.url("app.git")), "name": name, "stop_timeout_s": 1}
                dep = uuid.uuid4().hex
                # as the api sends it: the snapshot with plaintext values, sealed when serialised
                await api.publish(StartDeployment(deployment_id=dep, application_id=app_id, team_id="t", spec=spec))
                done = await wire.event(terminal(dep), f"end of deployment {dep}", 240)
                assert done["type"] == "evt.deployment.succeeded", done
                image, [replica] = done["data"]["image"], done["data"]["replicas"]
                with urllib.request.urlopen(replica["upstream"], timeout=10) as r:
                    assert r.read().decode().strip() == f"served {unique}"

                # a command the scheduler cannot take (two variables of one name): dead-lettered as it came,
                # with the validation error (which quotes the input) as its reason
                data = StartDeployment(
                    deployment_id=uuid.uuid4().hex, application_id=app_id, team_id="t", spec=spec
                ).model_dump(mode="json")
                data["spec"]["env"].append({**data["spec"]["env"][0]})
                env = Envelope(source="berth/api", type=StartDeployment.TYPE, data=data)
                await api.publish_envelope(StartDeployment.TYPE, env)
                await wire.event(
                    lambda e: e.get("type") == "evt.bus.dead_lettered" and e["data"].get("original_id") == env.id,
                    "dead letter",
                    30,
                )
                js = spy.jetstream()
                streams = {s: await stream_messages(js, s) for s in (CMD_STREAM, EVT_STREAM, LOG_STREAM, DLQ_STREAM)}
                rows = await table_rows(database, ("scheduler", "builder"))
                build_lines = builder.lines(dep)
            finally:
                for stopping in (
                    stop_builder(builder) if builder else None,
                    scheduler.stop() if scheduler else None,
                    api.close() if api else None,
                ):
                    if stopping is not None:
                        with contextlib.suppress(Exception):
                            await stopping
                await spy.close()
                daemon.stop()
        out, err = capfd.readouterr()
        logs = (out + err).encode()

        # what the test reads is really there (the checks below cannot pass by reading nothing)
        assert len(streams[EVT_STREAM]) > 5 and len(streams[LOG_STREAM]) > 5, {k: len(v) for k, v in streams.items()}
        [dead] = streams[DLQ_STREAM]
        assert env.id.encode() in dead
        assert any(w.startswith(b"cmd.deployment.start") and dep.encode() in w for w in wire.raw)
        assert any(w.startswith(b"cmd.build.start") and dep.encode() in w for w in wire.raw)
        assert b'"event": "deployment transition"' in logs and dep.encode() in logs, logs[-3000:]
        assert any(line.endswith(" build-secret-ok") for line in build_lines), build_lines
        assert any(line.endswith(" leaked: ***") for line in build_lines), build_lines  # redacted
        history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
        assert "visible-mode" in history  # plain build args are in the history: the control

        found = {}
        for stream, messages in streams.items():
            for i, m in enumerate(messages):
                found[f"{stream}#{i}"] = leaks(m, RUNTIME_SECRET, BUILD_SECRET)
        for i, w in enumerate(wire.raw):
            found[f"wire#{i}"] = leaks(w, RUNTIME_SECRET, BUILD_SECRET)
        store = [p for p in Path(nats_server.data_dir).rglob("*") if p.is_file()]
        for path in store:
            found[f"nats store {path}"] = leaks(path.read_bytes(), RUNTIME_SECRET, BUILD_SECRET)
        for table, text in rows.items():
            found[table] = leaks(text, RUNTIME_SECRET, BUILD_SECRET)
        found["logs"] = leaks(logs, RUNTIME_SECRET, BUILD_SECRET)
        found["build log"] = leaks("\n".join(build_lines).encode(), BUILD_SECRET)
        found["docker history"] = leaks(history.encode(), RUNTIME_SECRET, BUILD_SECRET)
        found["image inspect"] = leaks(docker("image", "inspect", image).encode(), RUNTIME_SECRET, BUILD_SECRET)
        assert {k: v for k, v in found.items() if v} == {}
        # the secrets were there all along, sealed: in the dead letter (and its reason), the scheduler's rows
        assert dead.count(b"sealed:v1:") == 3
        assert any(b"sealed:" in r for r in rows.values()), list(rows)
        with capfd.disabled():
            print(
                f"\nMEASURED no plaintext in {sum(map(len, streams.values()))} stream messages, {len(wire.raw)} bus "
                f"messages, {len(store)} nats store files, {len(rows)} tables, {len(logs)} log bytes, the image"
            )

        # where it has to be: the app's environment
        config = json.loads(docker("inspect", replica["container"]))[0]["Config"]
        assert f"APP_SECRET={RUNTIME_SECRET}" in config["Env"] and "MODE=prod" in config["Env"]
        assert not any(BUILD_SECRET in e for e in config["Env"])  # a build secret never reaches the runtime
    finally:
        ids = docker("ps", "-aq", "--filter", f"label=berth.app={app_id}").split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
        tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"berth/{name}").split()
        if tags:
            subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True, check=False)
