"""Named volumes and bind mounts of application services, as data: the Docker volume each named volume is,
the create body of that volume, the ``HostConfig.Mounts`` of a replica, and the sizes the engine reports.

A named volume of an application is the Docker volume ``berth-<application id>-<name>`` on every server
that runs a service mounting it, labelled ``berth.team``, ``berth.app`` and ``berth.volume`` (so it is
found again by label, whatever deployment made it). No deployment, rollback or scale removes it: only an
application's removal that asks for it (``cmd.application.remove`` with ``delete_volumes``). A compose
volume's local-driver options (``VolumeOptions``) are given when it is made; a later change is reported in
the deployment log (``options_change``), not applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berth_common import labels as label
from berth_common.catalogue import (
    ApplicationSpec,
    VolumeOptions,
    VolumeUsage,
    WebService,
    WorkerService,
    masked_options,
    servers_of,
)
from berth_common.catalogue import docker_volume_name as docker_name
from berth_scheduler.domain import published_ports


def volume_labels(application_id: str, volume: str, team_id: str | None) -> dict[str, str]:
    team = {label.TEAM: team_id} if team_id else {}
    return {**team, label.APP: application_id, label.VOLUME: volume, label.MANAGED: "true"}


def create_body(
    application_id: str, volume: str, team_id: str | None, options: VolumeOptions | None = None
) -> dict[str, Any]:
    """The ``POST /volumes/create`` body (local driver, with the compose file's ``driver_opts``: a tmpfs, an
    NFS or CIFS share); creating an existing volume changes nothing, its options neither."""
    body = {
        "Name": docker_name(application_id, volume),
        "Driver": "local",
        "Labels": volume_labels(application_id, volume, team_id),
    }
    if options is not None:
        body["DriverOpts"] = options.driver_opts()
    return body


def options_change(volume: str, server_id: str, body: Mapping[str, Any], made: Mapping[str, Any]) -> str | None:
    """The deployment log's line when the volume the engine has (``made``: the create call's answer, the
    existing volume when there was one) keeps other options than ``body`` asks (Docker cannot change a
    volume's options, and says nothing when asked to); None when they are the same."""
    wanted = dict(body.get("DriverOpts") or {})
    has = {str(k): str(v) for k, v in (made.get("Options") or {}).items()}
    if has == wanted:
        return None

    def shown(opts: Mapping[str, str]) -> str:  # a share's password is masked: the line is logged and shown
        return ", ".join(f"{k}={masked_options(v) if k == 'o' else v}" for k, v in sorted(opts.items())) or "none"

    return (
        f"[preparing] volume {volume} on server {server_id} keeps the options it was made with ({shown(has)}), not "
        f"the ones asked now ({shown(wanted)}): Docker cannot change a volume's options; remove the application "
        "with delete_volumes=true, or the volume on the server, to make it anew (its data is lost)"
    )


def mounts(
    application_id: str, service: WebService | WorkerService, options: Mapping[str, VolumeOptions] | None = None
) -> list[dict[str, Any]]:
    """``HostConfig.Mounts`` of one replica: its named volumes, then its bind mounts, in the spec's order. A
    volume with options (``options``: by volume name) names them too (``VolumeOptions.DriverConfig``): a Swarm
    task's node makes the volume with them (a server of its own gets them from ``create_body`` first)."""
    out: list[dict[str, Any]] = []
    for v in service.volumes:
        mount = {
            "Type": "volume",
            "Source": docker_name(application_id, v.name),
            "Target": v.path,
            "ReadOnly": v.read_only,
        }
        given = (options or {}).get(v.name)
        if given is not None:
            mount["VolumeOptions"] = {"DriverConfig": {"Name": "local", "Options": given.driver_opts()}}
        out.append(mount)
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
