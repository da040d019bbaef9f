"""Named volumes and bind mounts of application services, as data: the Docker volume each named volume is,
the create body of that volume, the ``HostConfig.Mounts`` of a replica, and the sizes the engine reports.

A named volume of an application is the Docker volume ``berth-<application id>-<name>`` on every server
that runs a service mounting it, labelled ``berth.team``, ``berth.app`` and ``berth.volume`` (so it is
found again by label, whatever deployment made it). No deployment, rollback or scale removes it: only an
application's removal that asks for it (``cmd.application.remove`` with ``delete_volumes``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berth_common import labels as label
from berth_common.catalogue import ApplicationSpec, VolumeUsage, WebService, WorkerService, servers_of
from berth_common.catalogue import docker_volume_name as docker_name
from berth_scheduler.domain import published_ports


def volume_labels(application_id: str, volume: str, team_id: str | None) -> dict[str, str]:
    team = {label.TEAM: team_id} if team_id else {}
    return {**team, label.APP: application_id, label.VOLUME: volume, label.MANAGED: "true"}


def create_body(application_id: str, volume: str, team_id: str | None) -> dict[str, Any]:
    """The ``POST /volumes/create`` body (local driver); creating an existing volume changes nothing."""
    return {
        "Name": docker_name(application_id, volume),
        "Driver": "local",
        "Labels": volume_labels(application_id, volume, team_id),
    }


def mounts(application_id: str, service: WebService | WorkerService) -> list[dict[str, Any]]:
    """``HostConfig.Mounts`` of one replica: its named volumes, then its bind mounts, in the spec's order."""
    out: list[dict[str, Any]] = [
        {"Type": "volume", "Source": docker_name(application_id, v.name), "Target": v.path, "ReadOnly": v.read_only}
        for v in service.volumes
    ]
    out += [{"Type": "bind", "Source": b.host_path, "Target": b.path, "ReadOnly": b.read_only} for b in service.binds]
    return out


@dataclass(frozen=True)
class Wanted:
    """A named volume a server needs before the replicas it runs start."""

    server_id: str
    name: str


def wanted(spec: ApplicationSpec) -> list[Wanted]:
    """Every (server, volume) a deployment of ``spec`` needs: each server of each service mounting it."""
    found: dict[Wanted, None] = {}
    for svc in spec.services:
        for server in servers_of(svc):
            for v in svc.volumes:
                found.setdefault(Wanted(server, v.name), None)
    return list(found)


def on_server(spec: ApplicationSpec, server_id: str) -> list[str]:
    """The names of the named volumes ``server_id`` needs for ``spec``, in order."""
    return [w.name for w in wanted(spec) if w.server_id == server_id]


def recreated_services(spec: ApplicationSpec) -> list[str]:
    """The services that deploy with ``strategy: recreate`` (their old replicas stop before the new start),
    and those that publish ports on their server (two containers cannot bind one port)."""
    publishing = set(published_ports.recreated(spec))
    return [svc.name for svc in spec.services if svc.strategy == "recreate" or svc.name in publishing]


def usage(server_id: str, df: Mapping[str, Any], application_id: str, team_id: str) -> list[VolumeUsage]:
    """The application's volumes (of ``team_id``: a volume of another team is never shown) in an engine's
    ``GET /system/df?type=volume`` answer, with their size (``UsageData.Size``; -1 or absent: unknown)."""
    out = []
    for v in df.get("Volumes") or []:
        found = v.get("Labels") or {}
        if found.get(label.APP) != application_id or found.get(label.TEAM) != team_id or label.VOLUME not in found:
            continue
        size = (v.get("UsageData") or {}).get("Size")
        out.append(
            VolumeUsage(
                server_id=server_id,
                name=found[label.VOLUME],
                docker_name=str(v.get("Name", "")),
                size_bytes=int(size) if isinstance(size, int) and size >= 0 else None,
            )
        )
    return sorted(out, key=lambda u: u.name)


def servers_in_specs(specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every server the stored snapshots (JSON) of an application's deployments place a service with a named
    volume on: where its volumes may be."""
    found: dict[str, None] = {}
    for spec in specs:
        for svc in spec.get("services") or []:
            if svc.get("volumes"):
                for server in svc.get("servers") or ["local"]:
                    found.setdefault(str(server), None)
    return list(found)
