"""Stream declarations, in one place. Declaring is idempotent and never overwrites a differing stream.

The one field declaring may change is the replica count: on a NATS cluster a stream declared with fewer
replicas than ``BERTH_NATS_REPLICAS`` asks for is raised to that count (never lowered: redundancy is not
given up by a service started with another setting).

The limits streams (events, log lines, dead letters) carry a per-subject message limit no subject ever
reaches (:data:`PER_SUBJECT_LIMIT`). It bounds nothing in practice; it is there for its effect on the store:
nats-server keeps in memory every byte written to the block a stream is filling while that block is
written or read at least every 10 s, up to the block's size, and a limits stream without limits gets 8 MB
blocks, one with a per-subject limit 4 MB blocks (``autoTuneFileStorageBlockSize``). Under a steady flow of
deploys the two hot streams (events, log lines) held up to 2 x 8 MB in memory: all but a few hundred KB
of the server's heap in use, and all of its growth (its heap profile, benchmarks/README.md, soak); with the
limit they hold at most 2 x 4 MB.

A stream declared before the limit existed is accepted without it, and keeps its larger blocks: nats-server
fixes a stream's block size when it makes the stream, and updating the limit in place would change the
configuration but not the blocks (after which nothing could tell them apart). Declaring finds such a stream
(:func:`block_size` of its configuration against the declared one's) and says so in one warning, with what
it costs and how to make it again; it does not make it again itself: the events and log lines it holds
(and its consumers' positions) would be lost, and none of that can be moved into a new stream of the same
name without a window in which a publish is lost."""

from __future__ import annotations

from dataclasses import dataclass, replace

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError

from berth_common.logging import get_logger

log = get_logger(__name__)

CMD_STREAM = "BERTH_CMD"
EVT_STREAM = "BERTH_EVT"
LOG_STREAM = "BERTH_LOG"
DLQ_STREAM = "BERTH_DLQ"
DEAD_LETTER_PREFIX = "dlq."
# JetStream's answers to a replica count it cannot hold: replicas > 1 on a single server (10074), no
# suitable peers / insufficient resources in the cluster (10005, 10023).
_REPLICA_ERRORS = frozenset({10074, 10005, 10023})
# Messages kept per subject in a limits stream: far above what any subject holds within its retention (a
# deployment's log lines, one event type over 7 days); chosen for the smaller blocks it gives (see above).
PER_SUBJECT_LIMIT = 100_000_000
_MB = 1024 * 1024
# nats-server's block sizes (filestore.go): the largest, a limits stream's default, the medium size (other
# retentions, and a stream with a per-subject limit or a byte cap between the two bounds) and the smallest.
_LARGE_BLOCK, _MEDIUM_BLOCK, _SMALL_BLOCK = 8 * _MB, 4 * _MB, 32 * 1024


def block_size(config: StreamConfig) -> int | None:
    """The size of the blocks nats-server writes a file stream in, from the configuration it was made with
    (2.15, the version ``berth up`` runs: ``autoTuneFileStorageBlockSize``, then the store's default); None
    for a memory stream. A ``max_msgs`` cap is estimated with the largest message: the largest block."""
    if config.storage == StorageType.MEMORY:
        return None
    if (config.max_bytes or -1) > 0:
        estimate = int(config.max_bytes or 0) // 4 + 1
        return _SMALL_BLOCK if estimate <= _SMALL_BLOCK else _LARGE_BLOCK if estimate >= _LARGE_BLOCK else _MEDIUM_BLOCK
    if (config.max_msgs or -1) > 0:
        return _LARGE_BLOCK
    if (config.max_msgs_per_subject or -1) > 0:
        return _MEDIUM_BLOCK
    return _LARGE_BLOCK if config.retention in (None, RetentionPolicy.LIMITS) else _MEDIUM_BLOCK


def stream_for(subject: str) -> str:
    """The stream that holds ``subject`` (its first token: cmd, log, dlq; anything else is an event)."""
    return {"cmd": CMD_STREAM, "log": LOG_STREAM, "dlq": DLQ_STREAM}.get(subject.split(".", 1)[0], EVT_STREAM)


class StreamConflictError(RuntimeError):
    """A stream exists with a configuration other than the declared one; Berth refuses to overwrite it."""


class StreamReplicasError(RuntimeError):
    """The server cannot hold a stream with the replica count asked for (a single server asked for 3, or a
    cluster with fewer nodes than replicas)."""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    retention: RetentionPolicy
    max_age_s: float = 0.0
    storage: StorageType = StorageType.FILE
    duplicate_window_s: float = 120.0
    discard: DiscardPolicy = DiscardPolicy.OLD
    max_bytes: int = -1
    # Messages per subject (-1: no limit); with a limit nats-server writes the stream in 4 MB blocks, not 8.
    max_msgs_per_subject: int = -1
    # Copies of the stream on a NATS cluster (1 on a single server; 3 on a three-node cluster).
    replicas: int = 1

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=self.retention,
            max_age=self.max_age_s or None,
            storage=self.storage,
            duplicate_window=self.duplicate_window_s,
            discard=self.discard,
            max_bytes=self.max_bytes,
            max_msgs_per_subject=self.max_msgs_per_subject,
            num_replicas=self.replicas,
        )

    def differences(self, actual: StreamConfig) -> list[str]:
        """Fields in which ``actual`` differs from this declaration (empty when they agree); the replica
        count is not one of them (:func:`declare_streams` raises it)."""
        diffs = []
        if sorted(actual.subjects or []) != sorted(self.subjects):
            diffs.append(f"subjects {actual.subjects} != {list(self.subjects)}")
        if actual.retention != self.retention:
            diffs.append(f"retention {actual.retention} != {self.retention}")
        if abs(float(actual.max_age or 0) - self.max_age_s) > 1e-3:
            diffs.append(f"max_age {actual.max_age} != {self.max_age_s}")
        if actual.storage != self.storage:
            diffs.append(f"storage {actual.storage} != {self.storage}")
        if abs(float(actual.duplicate_window or 0) - self.duplicate_window_s) > 1e-3:
            diffs.append(f"duplicate_window {actual.duplicate_window} != {self.duplicate_window_s}")
        if actual.discard != self.discard:
            diffs.append(f"discard {actual.discard} != {self.discard}")
        if (actual.max_bytes or -1) != self.max_bytes:
            diffs.append(f"max_bytes {actual.max_bytes} != {self.max_bytes}")
        per_subject = actual.max_msgs_per_subject or -1
        if per_subject != self.max_msgs_per_subject and per_subject != -1:  # none: declared before the limit
            diffs.append(f"max_msgs_per_subject {per_subject} != {self.max_msgs_per_subject}")
        return diffs


def default_streams(
    event_retention_days: float = 7.0, log_retention_hours: float = 24.0, replicas: int = 1
) -> list[StreamSpec]:
    """The command work queue (emptied as commands are acknowledged: its blocks are let go as they empty) and
    the limits streams, each with :data:`PER_SUBJECT_LIMIT` for its 4 MB blocks."""
    r = replicas

    def limits(name: str, subject: str, max_age_s: float) -> StreamSpec:
        return StreamSpec(
            name,
            (subject,),
            RetentionPolicy.LIMITS,
            max_age_s=max_age_s,
            max_msgs_per_subject=PER_SUBJECT_LIMIT,
            replicas=r,
        )

    return [
        StreamSpec(CMD_STREAM, ("cmd.>",), RetentionPolicy.WORK_QUEUE, replicas=r),
        limits(EVT_STREAM, "evt.>", event_retention_days * 86400),
        limits(LOG_STREAM, "log.>", log_retention_hours * 3600),
        limits(DLQ_STREAM, f"{DEAD_LETTER_PREFIX}>", 30 * 86400),
    ]


async def _check(js: JetStreamContext, spec: StreamSpec) -> bool:
    """True if the stream exists and agrees (its replicas raised when fewer); raises on a conflict; False if
    it does not exist."""
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        return False
    diffs = spec.differences(info.config)
    if diffs:
        log.error("stream config conflict", stream=spec.name, differences=diffs)
        raise StreamConflictError(f"stream {spec.name} exists with another configuration: {'; '.join(diffs)}")
    _report_blocks(spec, info.config, info.state.messages, info.state.bytes)
    await _raise_replicas(js, spec, info.config)
    return True


def _report_blocks(spec: StreamSpec, actual: StreamConfig, messages: int, stored: int) -> None:
    """Warn when the stream was made with blocks other than the declared ones (see the module's docstring)."""
    have, want = block_size(actual), block_size(spec.config())
    if have is None or want is None or have == want:
        return
    log.warning(
        "stream keeps the blocks it was made with: nats-server fixes them when it makes a stream",
        stream=spec.name,
        block_mb=round(have / _MB, 2),
        declared_block_mb=round(want / _MB, 2),
        messages=messages,
        stored_mb=round(stored / _MB, 2),
        made_again=False,  # its messages and its consumers' positions would be lost
        to_make_again=(
            f"while no service runs, delete stream {spec.name} once what it holds may go (after its retention, "
            "or once read); the next start makes it with the declared blocks"
        ),
    )


async def _raise_replicas(js: JetStreamContext, spec: StreamSpec, actual: StreamConfig) -> None:
    """Give an existing stream the replicas asked for when it has fewer. A server that refuses (a single
    server, or too few nodes) is reported and the stream kept as it is: it still works, with less redundancy."""
    have = actual.num_replicas or 1
    if have >= spec.replicas:
        if have > spec.replicas:
            log.info("stream keeps more replicas than asked for", stream=spec.name, replicas=have, asked=spec.replicas)
        return
    try:
        await js.update_stream(replace(actual, num_replicas=spec.replicas))
    except APIError as exc:
        log.error(
            "stream replicas not raised: the server refused",
            stream=spec.name,
            replicas=have,
            asked=spec.replicas,
            error=exc.description or str(exc),
        )
        return
    log.info("stream replicas raised", stream=spec.name, replicas=spec.replicas, were=have)


def _replicas_refused(exc: APIError, spec: StreamSpec) -> StreamReplicasError:
    return StreamReplicasError(
        f"cannot create stream {spec.name} with {spec.replicas} replicas (BERTH_NATS_REPLICAS): "
        f"{exc.description or exc}; a single NATS server holds 1, a cluster at most as many as it has nodes"
    )


async def declare_streams(js: JetStreamContext, specs: list[StreamSpec]) -> None:
    """Create the streams that do not exist; accept those that agree; refuse (raise) on any difference."""
    for spec in specs:
        if await _check(js, spec):
            continue
        try:
            await js.add_stream(spec.config())
            log.info("stream created", stream=spec.name)
        except BadRequestError as exc:
            # Created concurrently by another service: accept it only if it agrees with ours.
            if await _check(js, spec):
                continue
            if exc.err_code == 10065:  # subjects overlap with an existing stream
                log.error("stream subjects taken", stream=spec.name, subjects=list(spec.subjects))
                raise StreamConflictError(
                    f"cannot create stream {spec.name}: another stream already holds {list(spec.subjects)}"
                ) from exc
            if spec.replicas > 1 and exc.err_code in _REPLICA_ERRORS:
                log.error("stream replicas refused", stream=spec.name, replicas=spec.replicas, error=exc.description)
                raise _replicas_refused(exc, spec) from exc
            raise
        except APIError as exc:  # not enough nodes in the cluster (503) for the replicas asked for
            if spec.replicas > 1 and exc.err_code in _REPLICA_ERRORS:
                log.error("stream replicas refused", stream=spec.name, replicas=spec.replicas, error=exc.description)
                raise _replicas_refused(exc, spec) from exc
            raise
