"""Wiring of the builder service: the only place its parts are put together."""

from __future__ import annotations

from pathlib import Path

from berth_builder.adapters.git import GitRunner
from berth_builder.adapters.git_credentials import forget_all
from berth_builder.adapters.repo import BuildRepo
from berth_builder.domain.dockerfile import image_map
from berth_builder.entrypoints import bus
from berth_builder.settings import BuilderSettings
from berth_builder.usecases.build import Pipeline
from berth_builder.usecases.builds import Builds
from berth_builder.usecases.host_keys import HostKeys
from berth_builder.usecases.repository_files import RepositoryFiles
from berth_builder.usecases.servers import BuildServers
from berth_common.docker import DockerEngines, local_engine
from berth_common.runtime import Context, ServiceSpec, run

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def wire(ctx: Context) -> None:
    settings = ctx.settings
    assert isinstance(settings, BuilderSettings)
    engines = DockerEngines(local_engine(settings.docker_host, settings.docker_api_version))
    servers = BuildServers(engines, ctx.sessionmaker, settings.ssh_timeout_s)
    repo = BuildRepo(ctx.sessionmaker, stale_after_s=settings.stale_after_s)
    git = GitRunner()
    pipeline = Pipeline(settings, servers, git, repo, image_map(settings.image_map))
    builds = Builds(settings, ctx.bus, repo, pipeline, ctx.sessionmaker)
    ctx.extra["builder"] = builds
    ctx.cleanups.append(engines.close)
    ctx.cleanups.append(servers.close)
    settings.workspaces.mkdir(parents=True, exist_ok=True)
    forget_all(settings.workspaces)  # no deploy key outlives the checkout that wrote it
    files = RepositoryFiles(settings, git)
    await bus.register(ctx, builds, servers, files, HostKeys(settings), settings.max_concurrent_builds)


def spec(settings: BuilderSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="builder", settings=settings or BuilderSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
