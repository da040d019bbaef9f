"""One build, start to end: validate, resolve, reuse or clone, detect, build, tag, push. Returns an outcome.

The work of a ``cmd.build.start`` (``builds.py`` claims the build, runs this and records the outcome). The
build runs on the engine of the command's build server (``servers.py``): the context is streamed to it as
to the local one, and the image is made there; with a push registry it is then pushed (``push.py``). A
context larger than the free space of that server's data root fails before the engine gets it, with both
sizes (``domain.progress.no_room_reason``).

Validation (``build_inputs.py``) happens before anything else: no git process runs and no directory is made
for a command with an invalid URL, ref, path, build arg, build id or image tag.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth_builder.adapters.cgroups import limit_buildkit
from berth_builder.adapters.context import ContextError, make_context, probe, read_file, safe_dir
from berth_builder.adapters.docker import DockerClient
from berth_builder.adapters.git import GitRunner
from berth_builder.adapters.git_credentials import auth_base, credentials
from berth_builder.adapters.repo import BuildRepo
from berth_builder.domain.detect import GENERATED_PATH, DetectionFailed, detect
from berth_builder.domain.dockerfile import base_images, rewrite_from_lines
from berth_builder.domain.progress import BuildStream, Redactor, build_failure_reason, no_room_reason
from berth_builder.domain.push import registry_config_header
from berth_builder.domain.request import SecretsNeedBuildKit, build_request, cache_key, image_labels
from berth_builder.domain.source import InvalidInput
from berth_builder.settings import BuilderSettings
from berth_builder.usecases.build_inputs import Inputs, secrets_of
from berth_builder.usecases.checkout import Checkout, CloneFailed
from berth_builder.usecases.push import PushFailed, push_image
from berth_builder.usecases.servers import BuildServers, BuildServerUnusable
from berth_common import registries, sealing
from berth_common.catalogue import BuildFailureStage, StartBuild

Say = Callable[[str], Awaitable[None]]
DEFAULT_DOCKERFILE = "Dockerfile"
_AUTH_NAMES = {"ssh": "deploy key", "https": "access token"}


@dataclass(frozen=True)
class Succeeded:
    image_id: str
    commit: str
    cache_key: str
    reused: bool = False
    generated_dockerfile: str | None = None
    pushed_ref: str | None = None


@dataclass(frozen=True)
class Failed:
    stage: BuildFailureStage
    reason: str
    commit: str = ""


@dataclass(frozen=True)
class Cancelled:
    """Stopped by ``cmd.build.cancel`` (the handler's outcome; the pipeline itself is simply cancelled)."""

    reason: str
    removed: tuple[str, ...] = ()


Outcome = Succeeded | Failed | Cancelled


class Fail(Exception):
    def __init__(self, stage: BuildFailureStage, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


@dataclass(eq=False)
class Pipeline:
    settings: BuilderSettings
    servers: BuildServers
    git: GitRunner
    repo: BuildRepo
    image_map: dict[str, str]
    key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.key = self.settings.secret_key.get_secret_value().encode()

    async def run(self, cmd: StartBuild, say: Say, inputs: Inputs) -> Outcome:
        workspace = self.settings.workspaces / cmd.build_id
        await asyncio.to_thread(shutil.rmtree, workspace, True)  # left by an attempt that crashed
        try:
            docker = await self.servers.docker(cmd.source.build_server)
        except BuildServerUnusable as exc:
            return Failed("source", str(exc))
        if cmd.source.build_server != "local":
            await say(f"building on server {cmd.source.build_server}")
        try:
            outcome = await self._run(cmd, say, inputs, workspace, docker)
            if cmd.source.push is None:
                return outcome
            try:
                pushed = await push_image(docker, cmd.image_tag, cmd.source.push, say)
            except PushFailed as exc:
                await docker.untag(cmd.image_tag)  # a build that failed leaves no image for its deployment
                return Failed("push", str(exc), outcome.commit)
            return dataclasses.replace(outcome, pushed_ref=pushed)
        except Fail as exc:
            return Failed(exc.stage, exc.reason)
        finally:
            await asyncio.to_thread(shutil.rmtree, workspace, True)

    async def _run(self, cmd: StartBuild, say: Say, inputs: Inputs, workspace: Path, docker: DockerClient) -> Succeeded:
        redact = Redactor(secrets_of(cmd))
        ref_label = inputs.ref.value or "default branch"
        git = Checkout.starting_now(
            self.git,
            inputs.url,
            inputs.ref,
            self.settings.clone_timeout_s,
            redact,
            self.settings.git_binary,
            policy=self.settings.outbound_policy_for(cmd.team_id),
        )
        checkout = workspace / "src"
        try:
            async with credentials(cmd.source.auth, inputs.url, auth_base(self.settings.workspaces)) as plan:
                git = git.with_credentials(plan)
                if cmd.source.auth is not None:
                    await say(f"authenticating with the application's {_AUTH_NAMES[cmd.source.auth.kind]}")
                # 1. resolve the ref to a commit without cloning (and reuse an image built from it)
                if inputs.ref.kind != "commit":
                    await say(f"resolving {ref_label} of {inputs.url.display}")
                commit, ref_found = await git.resolve()
                if commit:
                    key = self._cache_key(inputs, commit)
                    await self.repo.set_commit(cmd.build_id, commit, key)
                    reused = await self._reuse(cmd, key, commit, say, docker)
                    if reused is not None:
                        return reused

                # 2. clone
                await asyncio.to_thread(workspace.mkdir, parents=True, exist_ok=True)
                await say(f"cloning {inputs.url.display} ({ref_label})")

                async def git_line(line: str) -> None:
                    await say(git.redact(line.replace(str(checkout), "src")))  # no server paths in the user's log

                actual = await git.clone(str(checkout), ref_found=ref_found, on_line=git_line, say=say)
        except CloneFailed as exc:
            raise Fail("clone", exc.reason) from None
        except (InvalidInput, sealing.UnsealError) as exc:
            raise Fail("source", f"the repository's credentials cannot be used: {exc}") from None
        if actual != commit:
            commit = actual
            key = self._cache_key(inputs, commit)
            await self.repo.set_commit(cmd.build_id, commit, key)
            reused = await self._reuse(cmd, key, commit, say, docker)
            if reused is not None:
                return reused
        key = self._cache_key(inputs, commit)
        await say(f"checked out {commit}")

        # 3. the Dockerfile: the repository's, or Berth's detection
        try:
            context = safe_dir(checkout, inputs.subdirectory)
            dockerfile_path, text, generated = await self._dockerfile(context, inputs, say)
        except ContextError as exc:
            raise Fail("dockerfile", str(exc)) from None
        shown = text if generated else None  # the user sees official image names, not local ones
        text, changes = rewrite_from_lines(text, self.image_map)
        for official, local in changes:
            await say(f"base image {official} -> local image {local} (image map)")

        # 4. the context tar, then the build
        tar = workspace / "context.tar"
        try:
            info = await asyncio.to_thread(
                make_context,
                context,
                tar,
                dockerfile_path=dockerfile_path,
                dockerfile_text=text,
                max_bytes=self.settings.max_context_mb * 1024 * 1024,
            )
        except ContextError as exc:
            raise Fail("dockerfile", str(exc)) from None
        for skipped in info.skipped:
            await say(f"left out of the build context: {skipped}")
        await say(f"build context: {info.files} files, {info.bytes / 1024:.0f} KiB")
        refused = no_room_reason(info.bytes, await self.servers.free(cmd.source.build_server))
        if refused is not None:  # compared before the build: a context the disk cannot hold fails with both sizes
            raise Fail("build", refused)
        labels = image_labels(
            build_id=cmd.build_id,
            deployment_id=cmd.deployment_id,
            application_id=cmd.application_id,
            commit=commit,
            cache_key=key,
            service=cmd.service,
        )
        try:
            request = build_request(
                tag=cmd.image_tag,
                dockerfile=dockerfile_path,
                args=inputs.args,
                labels=labels,
                engine=self.settings.build_engine,
                nocache=cmd.no_cache,
                limits=self.settings.background_limits,
            )
        except SecretsNeedBuildKit as exc:
            raise Fail("source", str(exc)) from None
        stream = BuildStream(redact)

        async def on_object(obj: dict[str, Any]) -> None:
            for line in stream.feed(obj):
                await say(line)

        timeout = cmd.timeout_s or self.settings.build_timeout_s
        secrets = {a.name: a.value for a in inputs.args if a.secret}
        bases = self._base_credentials(cmd, changes)
        config = registry_config_header(bases) if bases else None
        for host, (user, _) in sorted(bases.items()):
            await say(f"base images from {host}: as {user} (the team's registry credentials)")
        if self.settings.build_engine == "buildkit" and cmd.source.build_server == "local":
            # BuildKit ignores the request's limits: its parent cgroup takes them (adapters/cgroups.py)
            for problem in await asyncio.to_thread(limit_buildkit, self.settings.background_limits):
                await say(f"BuildKit runs without the background limits here: {problem}")
        await say(f"building {cmd.image_tag} ({self.settings.build_engine})")
        try:
            async with asyncio.timeout(timeout):
                await docker.build(
                    request,
                    tar,
                    on_object,
                    secrets=secrets,
                    registries=bases if changes else None,  # mapped bases: asked for through the session
                    registry_config=config,
                )
        except TimeoutError:
            raise Fail(
                "build",
                f"the build did not finish within {timeout:g}s: make it faster or raise "
                "BERTH_BUILD_TIMEOUT_S.\nLast lines:\n" + "\n".join(list(stream.tail)[-15:]),
            ) from None
        for line in stream.flush():
            await say(line)
        if stream.error is not None or stream.image_id is None:
            error = stream.error or "the build ended without an image"
            raise Fail("build", build_failure_reason(error, stream.tail, base_images(text)))
        image_id = await docker.image_id(cmd.image_tag)
        if image_id is None:
            raise Fail("build", f"the build reported {stream.image_id} but {cmd.image_tag} does not exist")
        return Succeeded(image_id=image_id, commit=commit, cache_key=key, generated_dockerfile=shown)

    def _cache_key(self, inputs: Inputs, commit: str) -> str:
        return cache_key(
            key=self.key,
            repository=inputs.url.display,
            commit=commit,
            subdirectory=inputs.subdirectory,
            dockerfile=inputs.dockerfile,
            args=inputs.args,
            image_map=self.image_map,
            engine=self.settings.build_engine,
        )

    def _base_credentials(self, cmd: StartBuild, changes: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
        """host -> (user, password): the team's credentials for the registries the image map sent a ``FROM``
        base to (by the shared rule, ``berth_common.registries``); a password that does not open is left out."""
        found: dict[str, tuple[str, str]] = {}
        for _, local in changes:
            try:
                host = registries.registry_of(local)
            except registries.InvalidReferenceError:
                continue
            auth = registries.credentials_for(host, cmd.source.base_auths)
            if auth is not None and host not in found:
                try:
                    found[host] = (auth.username, auth.reveal())
                except sealing.UnsealError:
                    continue
        return found

    async def _reuse(self, cmd: StartBuild, key: str, commit: str, say: Say, docker: DockerClient) -> Succeeded | None:
        if cmd.no_cache:
            return None
        row = await self.repo.reusable(key, cmd.source.build_server)
        if row is None or row.image_id is None or row.build_id == cmd.build_id:
            return None
        if await docker.image_id(row.image_id) is None:
            await say(f"the image of build {row.build_id} is gone: building again")
            return None
        await docker.tag(row.image_id, cmd.image_tag)
        await say(f"reusing {row.image_id[:19]} built by {row.build_id} from the same commit and inputs")
        return Succeeded(
            image_id=row.image_id,
            commit=commit,
            cache_key=key,
            reused=True,
            generated_dockerfile=row.generated_dockerfile,
        )

    async def _dockerfile(self, context: Path, inputs: Inputs, say: Say) -> tuple[str, str, bool]:
        """(path in the context, text, generated?)"""
        if inputs.dockerfile is not None:
            text = await asyncio.to_thread(read_file, context, inputs.dockerfile, 1024 * 1024)
            if text is not None:
                return inputs.dockerfile, text, False
            if inputs.dockerfile != DEFAULT_DOCKERFILE:
                where = f" in {inputs.subdirectory!r}" if inputs.subdirectory else ""
                raise Fail(
                    "dockerfile",
                    f"Dockerfile {inputs.dockerfile!r} not found{where}: check the path, or "
                    "leave it empty to let Berth detect how to build the repository.",
                )
        try:
            detection = detect(await asyncio.to_thread(probe, context))
        except DetectionFailed as exc:
            raise Fail("dockerfile", str(exc)) from None
        await say(f"no Dockerfile: detected {detection.summary}; generated Dockerfile:")
        for line in detection.dockerfile.splitlines():
            await say(f"  {line}")
        return GENERATED_PATH, detection.dockerfile, True
