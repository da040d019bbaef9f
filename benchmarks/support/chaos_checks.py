"""The invariants the chaos suite checks once the storm is over, on what runs and on what Berth recorded.

- every deployment ends (succeeded, failed or cancelled) within a bound; a failed or cancelled one has a
  reason (``stuck``, ``no_reason``);
- no application runs two versions, nor more replicas than it asked for (``duplicates``);
- no container, route, image or volume that no record explains (``orphans``): a container of an application that is
  not its live version's running replica, a route file under ``<data>/traefik/dynamic`` whose hosts or
  upstreams are not an application's live replicas, an image labelled for an application by a deployment
  the application does not have;
- every deployment has exactly one end on the bus (``BERTH_EVT``): none ended twice, none differently from
  what the API says (``done_twice``, ``end_mismatch``);
- the API's view equals what runs: its ``runtime`` lists exactly the running containers, its live version
  is theirs, and Traefik serves that version's content (``api_mismatches``, ``serving_wrong``).

Everything is read from Docker by the ``berth.*`` labels of the run's own applications and team (the engine
may be shared with other work; ``host``: the engine the platform's local server is, when not the machine's),
from the run's data directory, the API and the bus.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import yaml
from nats.js.api import ConsumerConfig, DeliverPolicy

from berth_cli.baseimages import DOCKER

TERMINAL = ("succeeded", "failed", "cancelled")
SENTINEL_FILE = "000-berth-sentinel.yml"
FORMAT = '{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Label "berth.app"}}\t{{.Label "berth.service"}}\t{{.Label "berth.deployment"}}\t{{.Ports}}'


def docker(*args: str, host: str | None = None) -> str:
    """The docker CLI against the machine's engine (or ``host``: a test server's)."""
    where = ["-H", host] if host else []
    return subprocess.run([DOCKER, *where, *args], capture_output=True, text=True, timeout=120, check=True).stdout


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    state: str
    app: str
    service: str
    deployment: str
    ports: str

    def upstream_port(self) -> int | None:
        """The host port of ``127.0.0.1:PORT->...`` (a local web replica's upstream)."""
        for part in self.ports.split(","):
            part = part.strip()
            if part.startswith("127.0.0.1:") and "->" in part:
                return int(part.split(":", 1)[1].split("->", 1)[0])
        return None


def containers(label: str, host: str | None = None) -> list[Container]:
    out = docker("ps", "-a", "--filter", f"label={label}", "--format", FORMAT, host=host)
    return [Container(*(line.split("\t") + [""] * 7)[:7]) for line in out.splitlines() if line.strip()]


def images_of(app_id: str, host: str | None = None) -> list[tuple[str, str]]:
    """(image id, deployment label) of every image labelled for the application."""
    ids = docker("images", "-q", "--filter", f"label=berth.application={app_id}", host=host).split()
    found = []
    for image_id in sorted(set(ids)):
        labels = (
            json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image_id, host=host)) or {}
        )
        found.append((image_id, str(labels.get("berth.deployment", ""))))
    return found


def volumes_of(team: str, host: str | None = None) -> list[tuple[str, str]]:
    """(volume name, application label) of every volume labelled for the team."""
    out = docker(
        "volume",
        "ls",
        "--filter",
        f"label=berth.team={team}",
        "--format",
        '{{.Name}}\t{{.Label "berth.app"}}',
        host=host,
    )
    rows = [[*line.split("\t"), ""] for line in out.splitlines() if line.strip()]
    return [(row[0], row[1]) for row in rows]


def check_volumes(team: str, apps: list[dict[str, Any]], f: Findings, host: str | None = None) -> None:
    """A volume of the team belongs to an application that declares volumes (the run's declare none)."""
    declaring = {a["id"] for a in apps if any(s.get("volumes") for s in a["services"])}
    for name, app_id in volumes_of(team, host):
        f.checked["volumes"] += 1
        if app_id not in declaring:
            f.orphans.append(f"volume {name} of {app_id!r}: no application declares it")


def route_files(dynamic: Path) -> dict[str, tuple[set[str], set[str]]]:
    """{file name: (hosts, upstream URLs)} of every route file proxy-sync wrote (the sentinel left out)."""
    routes = {}
    for path in sorted(dynamic.glob("*.yml")):
        if path.name == SENTINEL_FILE:
            continue
        doc = yaml.safe_load(path.read_text()) or {}
        http = doc.get("http") or {}
        hosts = {
            h.split("`")[1]
            for r in (http.get("routers") or {}).values()
            for h in str(r.get("rule", "")).split("||")
            if "`" in h
        }
        ups = {
            s["url"]
            for svc in (http.get("services") or {}).values()
            for s in ((svc.get("loadBalancer") or {}).get("servers") or [])
        }
        if hosts or ups:
            routes[path.name] = (hosts, ups)
    return routes


async def _as_admin(nats_url: str, password: str) -> Any:
    """A connection as the bus's ``admin`` identity (the host's tooling: it may inspect the streams)."""
    return await nats.connect(
        nats_url, user="admin", password=password, inbox_prefix=b"_INBOX.admin", connect_timeout=10
    )


async def bus_ends(nats_url: str, password: str) -> dict[str, list[tuple[str, str]]]:
    """{deployment id: [(end type, envelope id), ...]} from every deployment end kept in ``BERTH_EVT``."""
    nc = await _as_admin(nats_url, password)
    ends: dict[str, list[tuple[str, str]]] = defaultdict(list)
    try:
        js = nc.jetstream()
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        for kind in TERMINAL:
            sub = await js.pull_subscribe(f"evt.deployment.{kind}", stream="BERTH_EVT", config=config)
            while True:
                try:
                    msgs = await sub.fetch(200, timeout=1.5)
                except TimeoutError:
                    break
                for msg in msgs:
                    env = json.loads(msg.data)
                    ends[str(env["data"].get("deployment_id"))].append((kind, str(env["id"])))
                    await msg.ack()
            await sub.unsubscribe()
    finally:
        await nc.close()
    return ends


async def stream_counts(nats_url: str, password: str) -> dict[str, int]:
    """Messages left in the command work queue and in the dead-letter stream."""
    nc = await _as_admin(nats_url, password)
    try:
        js = nc.jetstream()
        return {
            "commands_pending": int((await js.stream_info("BERTH_CMD")).state.messages),
            "dead_letters": int((await js.stream_info("BERTH_DLQ")).state.messages),
        }
    finally:
        await nc.close()


@dataclass
class Findings:
    stuck: list[str] = field(default_factory=list)
    no_reason: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    done_twice: list[str] = field(default_factory=list)
    end_mismatch: list[str] = field(default_factory=list)
    api_mismatches: list[str] = field(default_factory=list)
    serving_wrong: list[str] = field(default_factory=list)
    failed_images: int = 0
    checked: Counter[str] = field(default_factory=Counter)  # what was looked at: a check of nothing proves nothing

    def problems(self) -> dict[str, list[str]]:
        return {k: v for k, v in vars(self).items() if isinstance(v, list) and v}


def check_app(app: dict[str, Any], deployments: list[dict[str, Any]], running: list[Container], f: Findings) -> None:
    """One application's deployments, containers and API view (``app``: GET /v1/applications/{id})."""
    app_id, name = app["id"], app["name"]
    for d in deployments:
        if d["status"] not in TERMINAL:
            f.stuck.append(f"{name}#{d['number']} {d['status']}/{d['state']}: {d['step']}")
        elif d["status"] != "succeeded" and not (d.get("reason") or "").strip():
            f.no_reason.append(f"{name}#{d['number']} {d['status']} without a reason")
    live = (app.get("live") or {}).get("deployment_id")
    mine = [c for c in running if c.app == app_id]
    for c in mine:
        if c.state != "running":
            f.orphans.append(f"container {c.name} of {name} is {c.state}")
        elif c.deployment != live:
            f.orphans.append(f"container {c.name} of {name} runs deployment {c.deployment}, live is {live}")
    up = [c for c in mine if c.state == "running"]
    f.checked["containers"] += len(mine)
    f.checked["deployments"] += len(deployments)
    desired = {s["name"]: int(s.get("replicas", 1)) for s in app["services"]}
    for service, want in desired.items():
        versions = {c.deployment for c in up if c.service == service}
        count = sum(1 for c in up if c.service == service)
        if len(versions) > 1:
            f.duplicates.append(f"{name}/{service} runs {len(versions)} versions: {sorted(versions)}")
        if count > want:
            f.duplicates.append(f"{name}/{service} runs {count} replicas, wants {want}")
        if live and count < want:
            f.api_mismatches.append(f"{name}/{service} runs {count} replicas of the live version, wants {want}")
    runtime = app.get("runtime") or {}
    if not runtime.get("available"):
        f.api_mismatches.append(f"{name}: runtime unavailable: {runtime.get('error')}")
        return
    shown = {r["container"].lstrip("/") for r in runtime.get("replicas", []) if r.get("state") == "running"}
    if shown != {c.name for c in up}:
        f.api_mismatches.append(f"{name}: API shows {sorted(shown)}, Docker runs {sorted(c.name for c in up)}")
    if runtime.get("live_deployment_id") != live:
        f.api_mismatches.append(f"{name}: runtime's live {runtime.get('live_deployment_id')} != live {live}")


def check_ends(deployments: dict[str, dict[str, Any]], ends: dict[str, list[tuple[str, str]]], f: Findings) -> None:
    """Each deployment's ends on the bus against the API's status."""
    for dep_id, d in deployments.items():
        kinds = ends.get(dep_id, [])
        f.checked["bus_ends"] += len(kinds)
        distinct = {envelope for _, envelope in kinds}
        if len(distinct) > 1:
            f.done_twice.append(f"deployment {dep_id} ended {len(distinct)} times: {Counter(k for k, _ in kinds)}")
        if d["status"] in TERMINAL and {k for k, _ in kinds} != {d["status"]}:
            f.end_mismatch.append(f"deployment {dep_id}: API {d['status']}, bus {sorted({k for k, _ in kinds})}")


def local_upstream(c: Container) -> str:
    return f"http://127.0.0.1:{c.upstream_port()}"


def check_routes(
    routes: dict[str, tuple[set[str], set[str]]],
    apps: list[dict[str, Any]],
    up: list[Container],
    f: Findings,
    upstream: Callable[[Container], str] = local_upstream,
) -> None:
    """Every route file is an application's web service, sending to exactly its live running replicas
    (``up``: those of the engine behind this Traefik; ``upstream``: how its route names one)."""
    by_host = {h: (a, s) for a in apps for s in a["services"] for h in s.get("hosts", [])}
    for file, (hosts, ups) in routes.items():
        f.checked["routes"] += 1
        owners = {(by_host[h][0]["id"], by_host[h][1]["name"]) for h in hosts if h in by_host}
        if len(owners) != 1 or any(h not in by_host for h in hosts):
            f.orphans.append(f"route {file} (hosts {sorted(hosts)}) belongs to no application")
            continue
        app_id, service = owners.pop()
        app = next(a for a in apps if a["id"] == app_id)
        live = (app.get("live") or {}).get("deployment_id")
        want = {
            upstream(c)
            for c in up
            if c.app == app_id and c.service == service and c.deployment == live and c.state == "running"
        }
        if ups != want:
            f.orphans.append(
                f"route {file} of {app['name']}/{service} sends to {sorted(ups)}, live replicas {sorted(want)}"
            )


def check_images(app: dict[str, Any], deployments: list[dict[str, Any]], f: Findings, host: str | None = None) -> None:
    """An image labelled for the application names one of its deployments."""
    known = {d["id"]: d["status"] for d in deployments}
    for image_id, dep in images_of(app["id"], host):
        f.checked["images"] += 1
        if dep not in known:
            f.orphans.append(f"image {image_id} of {app['name']} built for unknown deployment {dep!r}")
        elif known[dep] != "succeeded":
            f.failed_images += 1
