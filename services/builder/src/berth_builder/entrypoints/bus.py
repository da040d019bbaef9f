"""Bus consumers of the builder service: each command is one call into ``usecases/builds.py``."""

from __future__ import annotations

from berth_builder.usecases.builds import Builds
from berth_builder.usecases.host_keys import HostKeys
from berth_builder.usecases.repository_files import RepositoryFiles
from berth_builder.usecases.servers import BuildServers
from berth_common.catalogue import CancelBuild, ServerChanged, StartBuild
from berth_common.db import Transactions, consume_once
from berth_common.runtime import Context


async def register(
    ctx: Context, builds: Builds, servers: BuildServers, files: RepositoryFiles, keys: HostKeys, consumers: int
) -> None:
    """One pull subscription per build slot on the same durable consumer, each fetching one message at a
    time: a build never waits in a fetched batch (where its ack deadline would run) behind another."""
    for _ in range(consumers):
        await ctx.bus.consume(StartBuild, builds.start, batch=1)
    # cancels never wait behind builds: their own consumer, handled at once (recording a request is idempotent)
    await ctx.bus.consume(CancelBuild, builds.cancel)
    await ctx.bus.consume(ServerChanged, consume_once(Transactions(ctx.bus, ctx.sessionmaker), servers.changed))
    await ctx.bus.serve("repository_file", files.answer, concurrency=files.settings.max_concurrent_reads * 4)
    await ctx.bus.serve("resolve_ref", files.answer_ref, concurrency=files.settings.max_concurrent_reads * 4)
    await ctx.bus.serve("host_keys", keys.answer, concurrency=4)
