"""Tables of the scheduler schema."""

from __future__ import annotations

import sqlalchemy as sa

from berth_common.fleet import servers_table

metadata = sa.MetaData()

pings = sa.Table(
    "pings",
    metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# One row per deployment: the persisted state machine (times are epoch seconds, wall clock).
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("application_id", sa.String(64), nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # ApplicationSpec, secret values sealed
    sa.Column("timeouts", sa.JSON, nullable=False),
    sa.Column("needs_build", sa.Boolean, nullable=False),
    sa.Column("build_id", sa.String(64), nullable=True),
    sa.Column("image", sa.String(512), nullable=True),
    sa.Column("image_digest", sa.String(512), nullable=True),  # "": a prebuilt image with no registry digest
    sa.Column("pushed_ref", sa.String(512), nullable=True),  # a built image in the team's push registry
    sa.Column("previous_deployment_id", sa.String(64), nullable=True),
    sa.Column("abort_outcome", sa.String(20), nullable=True),
    sa.Column("abort_reason", sa.Text, nullable=True),
    sa.Column("abort_state", sa.String(20), nullable=True),
    sa.Column("route_plan", sa.JSON, nullable=True),
    sa.Column("route_step", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deadline_at", sa.Float, nullable=True),
    sa.Column("drain_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("log_seq", sa.Integer, nullable=False, server_default="0"),
    # the volumes leaving a server start empty where they go (``RolloutOptions.abandon_volume_data``)
    sa.Column("abandon_volume_data", sa.Boolean, nullable=False, server_default=sa.false()),
    # the api's number of the deployment among its application's (its request order; None: not sent)
    sa.Column("number", sa.Integer, nullable=True),
    # a start call of its pre-deploy job's container (which has no container record) broke with its engine
    sa.Column("job_start_broke", sa.Boolean, nullable=False, server_default=sa.false()),
)

# The builds of a deployment whose compose services build their own images (``domain/builds.py``): one row
# per build, ``service`` "" for the application's own image; ``state`` pending until the builder answers.
deployment_builds = sa.Table(
    "deployment_builds",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("build_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),  # the plan's order (the first failed one is named)
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("image_tag", sa.String(512), nullable=False),
    sa.Column("state", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("image", sa.String(512), nullable=True),
    sa.Column("pushed_ref", sa.String(512), nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("deadline_at", sa.Float, nullable=True),  # its own deadline once asked for (scheduler_0015)
)

# What each compose service with an image of its own ran in a deployment (``domain/service_images.py``): the
# reference its snapshot named and the image its replicas ran (a build's tag or pushed reference, a pulled
# digest); a rollback to the deployment runs these.
deployment_images = sa.Table(
    "deployment_images",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("named", sa.String(512), nullable=False),
    sa.Column("image", sa.String(512), nullable=False),
)

# The volume data a deployment moves with its service from one server to another (``domain/volume_moves.py``,
# ``usecases/rollout/volume_move.py``; scheduler_0018), recorded before the old replicas stop: ``planned``,
# ``copying`` (an interrupted copy is made again from an emptied target), ``copied`` (``bytes`` in
# ``seconds``). ``target_made``: the volume was made on the target by the move (a failed deployment removes
# this copy; the source's volume always stays).
volume_moves = sa.Table(
    "volume_moves",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("volume", sa.String(64), primary_key=True),
    sa.Column("target", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("services", sa.JSON, nullable=False),
    sa.Column("state", sa.String(12), nullable=False, server_default="planned"),
    sa.Column("target_made", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("bytes", sa.BigInteger, nullable=True),
    sa.Column("seconds", sa.Float, nullable=True),
)

# The containers a deployment created (the label berth.deployment finds them too).
containers = sa.Table(
    "containers",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("deployment_id", sa.String(64), nullable=False, index=True),
    sa.Column("application_id", sa.String(64), nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("replica", sa.Integer, nullable=False),
    sa.Column("host_port", sa.Integer, nullable=True),
    sa.Column("docker_id", sa.String(80), nullable=True),
    sa.Column("ready", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("server_id", sa.String(64), nullable=False, server_default="local"),  # where it runs
    # a web replica's more routed ports on ``local``: {container port: host port} (``domain/port_routes.py``)
    sa.Column("more_ports", sa.JSON, nullable=True),
    # a start call of it broke with its engine (the engine may still hold its task: ``domain/lost_tasks.py``)
    sa.Column("start_broke", sa.Boolean, nullable=False, server_default=sa.false()),
)

# Every route the scheduler put in place, as proxy-sync last confirmed it, and its generation counter; a
# route is (server, route id): each server's Traefik has its own.
routes = sa.Table(
    "routes",
    metadata,
    sa.Column("route_id", sa.String(64), primary_key=True),
    sa.Column("application_id", sa.String(64), nullable=False, index=True),
    sa.Column("hosts", sa.JSON, nullable=False),
    sa.Column("upstreams", sa.JSON, nullable=False),  # empty: not routed
    sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("server_id", sa.String(64), primary_key=True, server_default="local"),
)

# Commands sent to proxy-sync, matched with its answers by (server, route_id, generation).
route_ops = sa.Table(
    "route_ops",
    metadata,
    sa.Column("route_id", sa.String(64), primary_key=True),
    sa.Column("generation", sa.BigInteger, primary_key=True),
    sa.Column("deployment_id", sa.String(64), nullable=False, index=True),
    sa.Column("step", sa.Integer, nullable=False),  # plan step index; -1: restoring after a failure
    sa.Column("kind", sa.String(10), nullable=False),  # apply | remove
    sa.Column("hosts", sa.JSON, nullable=False),
    sa.Column("upstreams", sa.JSON, nullable=False),
    sa.Column("status", sa.String(10), nullable=False, server_default="pending"),  # pending | done | failed
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("server_id", sa.String(64), primary_key=True, server_default="local"),
)

# One row per application the api asked to take down: the persisted removal (``domain/removal.py``).
removals = sa.Table(
    "removals",
    metadata,
    sa.Column("application_id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("phase", sa.String(20), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    sa.Column("drain_grace_s", sa.Float, nullable=False),
    sa.Column("route_plan", sa.JSON, nullable=True),
    sa.Column("deadline_at", sa.Float, nullable=True),
    sa.Column("drain_until", sa.Float, nullable=True),
    sa.Column("containers", sa.JSON, nullable=False),
    sa.Column("images", sa.JSON, nullable=False),
    sa.Column("routes_removed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("containers_removed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("images_removed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("delete_volumes", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("volumes_removed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
)

# The servers the scheduler may run containers on, as the api announces them (``evt.server.changed``).
servers = servers_table(metadata)

# One row per scale command: the persisted scale of an application's live version (``domain/scaling.py``).
scales = sa.Table(
    "scales",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the command's request id
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("application_id", sa.String(64), nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("trigger", sa.String(10), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("targets", sa.JSON, nullable=False),  # {service: replicas}
    sa.Column("drain_grace_s", sa.Float, nullable=False),
    sa.Column("phase", sa.String(12), nullable=False),
    sa.Column("deployment_id", sa.String(64), nullable=True),
    sa.Column("before", sa.JSON, nullable=False),  # {service: replicas} when it began
    sa.Column("add", sa.JSON, nullable=False),  # [[service, replica], ...]
    sa.Column("remove", sa.JSON, nullable=False),
    sa.Column("deadline_at", sa.Float, nullable=True),
    sa.Column("drain_until", sa.Float, nullable=True),
    sa.Column("failure", sa.Text, nullable=True),
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
)

# Swarms the scheduler formed or adopted (``cmd.swarm.form``): the manager's worker join token sealed
# (``Sealer.seal_value``), the nodes as last seen, which server each Berth-managed node is.
swarms = sa.Table(
    "swarms",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("manager_server_id", sa.String(64), nullable=False),
    sa.Column("worker_server_ids", sa.JSON, nullable=False),
    sa.Column("cluster_id", sa.String(64), nullable=False),
    sa.Column("manager_node_id", sa.String(64), nullable=False),
    sa.Column("network", sa.String(63), nullable=False),
    sa.Column("worker_token", sa.Text, nullable=False),  # sealed, never sent anywhere
    sa.Column("nodes", sa.JSON, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
)

# Database backups (``cmd.backup.start``): one row per backup, its state, and the command it carries out
# (secrets sealed as on the wire) so an interrupted one can be finished as failed and its uploads aborted.
backups = sa.Table(
    "backups",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("database_id", sa.String(64), nullable=False),
    sa.Column("engine", sa.String(20), nullable=False),
    sa.Column("database", sa.String(64), nullable=True),
    sa.Column("state", sa.String(12), nullable=False),  # running, succeeded, failed
    sa.Column("command", sa.JSON, nullable=False),
    sa.Column("compression", sa.String(8), nullable=False),
    # [[destination index, key, upload id], ...] in flight, and ["stopped", container, None] per container a
    # volume backup stopped for consistency (started again by the sweep of an interrupted one)
    sa.Column("uploads", sa.JSON, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("worker", sa.String(64), nullable=False),  # the process running it
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
)

# Every verified copy of a backup: retention deletes the stored object and marks the row pruned.
backup_objects = sa.Table(
    "backup_objects",
    metadata,
    sa.Column("backup_id", sa.String(64), primary_key=True),
    sa.Column("destination", sa.String(400), primary_key=True),
    sa.Column("database_id", sa.String(64), nullable=False),
    sa.Column("key", sa.String(1100), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("pruned_at", sa.Float, nullable=True),
)

# Restores (``cmd.backup.restore``): state, for a repeated command and an interrupted one.
restores = sa.Table(
    "restores",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("backup_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
)

# Schedules (``cmd.schedule.set``): the command to publish at each due time, as the api sent it (its secrets
# travel sealed already), and when it is next due (UTC). A removed schedule stays as a tombstone with its
# revision (``removed``, no next due time), so an older ``cmd.schedule.set`` delivered late is a no-op.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("cron", sa.String(128), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("grace_s", sa.Integer, nullable=False),
    sa.Column("command_type", sa.String(128), nullable=False),
    sa.Column("command", sa.JSON, nullable=False),
    sa.Column("target_id", sa.String(64), nullable=True),
    sa.Column("removed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("next_due", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_due", sa.DateTime(timezone=True), nullable=True),  # the due time of the last run
    sa.Column("last_command_id", sa.String(128), nullable=True),
    sa.Column("last_fired_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("schedules_due", "next_due", postgresql_where=sa.text("NOT removed")),
)

# One-off runs (``cmd.run.start``, ``usecases/runs.py``): the command as the api sent it, the state of its
# container ``container`` on ``server_id``, and the outcome. ``pruned``: its finished container was removed
# (only the newest few of an application's are kept for their logs).
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("application_id", sa.String(64), nullable=False, index=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("command", sa.JSON, nullable=False),
    sa.Column("timeout_s", sa.Integer, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # queued, running, succeeded, failed, timed_out
    sa.Column("server_id", sa.String(64), nullable=True),
    sa.Column("container", sa.String(128), nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("last_lines", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("pruned", sa.Boolean, nullable=False, server_default=sa.false()),
    # A cron job's run (scheduler_0017): its job, and why it is being stopped (replaced by the next run).
    sa.Column("job_id", sa.String(64), nullable=True, index=True),
    sa.Column("job_name", sa.String(64), nullable=True),
    sa.Column("stop_reason", sa.Text, nullable=True),
)

# The one-click databases the scheduler last answered for (``usecases/database_revival.py``): the spec it ran
# (JSON, its password sealed), the request it answered last (the api records only that request's answers),
# and whether the database is meant to run (``running``) or was stopped, or failed, as answered.
database_runs = sa.Table(
    "database_runs",
    metadata,
    sa.Column("database_id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("server_id", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("spec", sa.Text, nullable=True),
    sa.Column("state", sa.String(12), nullable=False),  # running, stopped, failed
)

# The servers the server watcher (the metrics service) reported unreachable and not back yet
# (``evt.server.unreachable``, ``evt.server.back``, ``domain/server_state.py``): not contacted meanwhile.
servers_down = sa.Table(
    "servers_down",
    metadata,
    sa.Column("server_id", sa.String(64), primary_key=True),
    sa.Column("outage_id", sa.String(64), nullable=False),
    sa.Column("down_since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
)

# The image pruning due after an application's last success (``usecases/rollout/pruning.py``): written in
# the commit that makes the deployment succeed, removed once the pruning ran; a pruning given up (the
# application's next work, a restart) stays due and is resumed when the application is free.
prunes_due = sa.Table(
    "prunes_due",
    metadata,
    sa.Column("application_id", sa.String(64), primary_key=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),  # the success it follows
    sa.Column("image", sa.Text, nullable=True),  # the image that deployment ran (None: none of its own)
)

# The reports a deployment's log holds once (``usecases/rollout/image_pull.py``: ``log_lines(once=True)``): a
# volume or network that keeps other options than the spec pins is said once per deployment and server, however
# often its servers are prepared (the pre-deploy job, the start, a volume move, a scale). ``digest``: the line's.
deployment_reports = sa.Table(
    "deployment_reports",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(64), primary_key=True),
)
