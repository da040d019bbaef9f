"""The latest readings of every container and of the server: what the store, the alert rules and the
Prometheus endpoint all look at. Pure data plus the values a rule sees for each of its targets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from berth_metrics.domain.host import Disk
from berth_metrics.domain.lifecycle import Restart
from berth_metrics.domain.stats import HEALTH_CODES

TeamFilter = Callable[[dict[str, str]], bool]


@dataclass(frozen=True)
class ContainerReading:
    container_id: str
    name: str
    image: str
    labels: dict[str, str]  # berth labels: app / service / deployment / team
    at: datetime
    cpu_pct: float | None
    mem_used: int | None
    mem_limit: int | None
    net_rx: int | None
    net_tx: int | None
    blk_read: int | None
    blk_write: int | None
    restarts: int
    health: str | None
    restarting: bool = False  # Docker's restart policy is bringing it back (it stopped on its own)

    @property
    def mem_pct(self) -> float | None:
        if self.mem_used is None or not self.mem_limit:
            return None
        return self.mem_used / self.mem_limit * 100.0

    @property
    def health_code(self) -> int | None:
        return HEALTH_CODES.get(self.health) if self.health else None

    def matches(self, ref: str) -> bool:
        """A container is named by its name, its full id or an id prefix of at least 12 characters."""
        return ref == self.name or ref == self.container_id or (len(ref) >= 12 and self.container_id.startswith(ref))


@dataclass(frozen=True)
class ServerReading:
    server: str
    at: datetime
    cpu_pct: float | None
    mem_used: int
    mem_total: int
    load1: float
    load5: float
    load15: float
    disks: tuple[Disk, ...] = ()

    @property
    def mem_pct(self) -> float | None:
        return self.mem_used / self.mem_total * 100.0 if self.mem_total else None


@dataclass(frozen=True)
class StalledContainer:
    """A database's container that is not running and was not stopped: it never started (``created``), or
    Docker could not start it again (``reason``: the engine's error), or it is ``dead``."""

    container_id: str
    name: str
    labels: dict[str, str]  # berth labels: app / team / ...
    reason: str


@dataclass
class Snapshot:
    """The last reading of each running container and of the server, and the database containers that
    stalled (not running, not stopped on purpose)."""

    containers: dict[str, ContainerReading] = field(default_factory=dict)
    server: ServerReading | None = None
    stalled: dict[str, StalledContainer] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetValue:
    instance: str  # the concrete target: a container name, an app id, a server name
    value: float | None
    labels: dict[str, str]  # what to say about it (app, service, container, mount, ...)


def _container_value(metric: str, reading: ContainerReading) -> float | None:
    if metric == "cpu_pct":
        return reading.cpu_pct
    if metric == "mem_pct":
        return reading.mem_pct
    return None


def _worst(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _server_values(target_id: str, metric: str, snapshot: Snapshot) -> list[TargetValue]:
    server = snapshot.server
    if server is None or target_id not in ("*", server.server):
        return []
    labels = {"server": server.server}
    if metric == "disk_pct":
        disk = max(server.disks, key=lambda d: d.percent, default=None)
        if disk is not None:
            labels["mount"] = disk.path
        return [TargetValue(server.server, disk.percent if disk else None, labels)]
    value = {"cpu_pct": server.cpu_pct, "mem_pct": server.mem_pct}.get(metric)
    return [TargetValue(server.server, value, labels)]


def _container_values(
    target_id: str, metric: str, snapshot: Snapshot, recent: list[Restart], in_team: TeamFilter
) -> list[TargetValue]:
    out: dict[str, TargetValue] = {}
    for c in snapshot.containers.values():
        if not in_team(c.labels) or (target_id != "*" and not c.matches(target_id)):
            continue
        instance = c.name if target_id == "*" else target_id
        if metric == "restarts":
            value: float | None = float(sum(1 for r in recent if r.container_id == c.container_id))
        else:
            value = _container_value(metric, c)
        out[instance] = TargetValue(instance, value, {"container": c.name, **c.labels})
    if metric == "restarts":  # a crash-looping container is often not running at the moment of the reading
        for r in recent:
            instance = r.name if target_id == "*" else target_id
            if instance in out or not in_team(r.labels) or target_id not in ("*", r.name, r.container_id):
                continue
            count = float(sum(1 for x in recent if x.container_id == r.container_id))
            out[instance] = TargetValue(instance, count, {"container": r.name, **r.labels})
    return list(out.values())


def _app_values(
    target_id: str, metric: str, snapshot: Snapshot, recent: list[Restart], in_team: TeamFilter
) -> list[TargetValue]:
    apps: dict[str, list[ContainerReading]] = {}
    teams: dict[str, str] = {}
    for labels, reading in [(c.labels, c) for c in snapshot.containers.values()] + [(r.labels, None) for r in recent]:
        app = labels.get("app")
        if app and in_team(labels) and target_id in ("*", app):
            apps.setdefault(app, [])
            if reading is not None:
                apps[app].append(reading)
            if "team" in labels:
                teams[app] = labels["team"]
    out = []
    for app, containers in apps.items():
        if metric == "restarts":
            value: float | None = float(sum(1 for r in recent if r.labels.get("app") == app))
        else:
            value = _worst(_container_value(metric, c) for c in containers)
        out.append(TargetValue(app, value, {"app": app} | ({"team": teams[app]} if app in teams else {})))
    return out


def rule_values(
    *,
    kind: str,
    target_id: str,
    metric: str,
    team_id: str | None,
    window_s: float,
    snapshot: Snapshot,
    restarts: list[Restart],
    now: datetime,
    known: Iterable[str] = (),
) -> list[TargetValue]:
    """The reading a rule sees for each of its targets.

    ``target_id`` ``*`` means every target of the kind (containers and apps limited to the rule's team by
    their ``berth.team`` label). An app's value is its worst container (highest CPU or memory %); its
    restarts are summed over its containers within ``window_s``. ``known`` instances (alerts in progress)
    always get a reading, None (no restarts: 0) when their target is gone, so that their alert resolves.
    """
    since = now - timedelta(seconds=window_s)
    recent = [r for r in restarts if r.at >= since]

    def in_team(labels: dict[str, str]) -> bool:
        return not (team_id and target_id == "*") or labels.get("team") == team_id

    if kind == "server":
        values = _server_values(target_id, metric, snapshot)
    elif kind == "container":
        values = _container_values(target_id, metric, snapshot, recent, in_team)
    else:
        values = _app_values(target_id, metric, snapshot, recent, in_team)
    out = {v.instance: v for v in values}
    for instance in known:
        if instance not in out:
            out[instance] = TargetValue(instance, 0.0 if metric == "restarts" else None, {})
    return sorted(out.values(), key=lambda t: t.instance)
