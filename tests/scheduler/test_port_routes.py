"""Two routed ports of one web service (MinIO: its API on 9000, its console on 9001), as data: the replica's
create body publishes both (each on its own host port, chosen before creation), the routes the scheduler
wants are one per port with the hosts given to it, a route's path and buffering go to both, and the
catalogue refuses more ports it could not route."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.domain import names, port_routes, route_tls
from berth_scheduler.domain.containers import container_spec, definition
from berth_scheduler.domain.routing import RouteOp, RouteTarget

DEP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
APP = "app-1"


def minio(**over) -> ApplicationSpec:
    service = {
        "kind": "web",
        "name": "minio",
        "port": 9000,
        "hosts": ["minio-s3.localhost", "s3.example.com", "console.example.com"],
        "port_hosts": [{"port": 9001, "hosts": ["Console.example.com"]}],
        **over,
    }
    return ApplicationSpec.model_validate(
        {"name": "files", "source": {"kind": "image", "image": "minio/minio:1"}, "services": [service]}
    )


def test_a_replica_publishes_each_routed_port_on_its_own_host_port():
    spec = minio()
    (svc,) = spec.services
    cs = container_spec(APP, DEP, spec, svc, 1, "minio/minio:1", 41000, more_host_ports={9001: 41001})
    assert cs.body["ExposedPorts"] == {"9000/tcp": {}, "9001/tcp": {}}
    assert cs.body["HostConfig"]["PortBindings"] == {
        "9000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "41000"}],
        "9001/tcp": [{"HostIp": "127.0.0.1", "HostPort": "41001"}],
    }
    assert cs.more_ports == ((9001, 41001),)
    assert (cs.upstream_of(9000), cs.upstream_of(9001), cs.upstream_of(9002)) == (
        "http://127.0.0.1:41000",
        "http://127.0.0.1:41001",
        None,
    )
    with pytest.raises(ValueError, match="needs a host port for its port 9001"):
        container_spec(APP, DEP, spec, svc, 1, "minio/minio:1", 41000)
    remote = container_spec(APP, DEP, spec, svc, 1, "minio/minio:1", server_id="srv-2")
    assert (
        remote.body["ExposedPorts"] == {"9000/tcp": {}, "9001/tcp": {}}
        and "PortBindings" not in remote.body["HostConfig"]
    )
    assert remote.upstream_of(9001) == "http://berth-files-minio-0f1e2d3c-1:9001"
    # the host ports a deployment chose are no part of what the service's container is
    assert definition(APP, spec, svc, "minio/minio:1") == definition(APP, spec, svc, "minio/minio:1")
    one = minio(port_hosts=[])
    assert definition(APP, spec, svc, "minio/minio:1") != definition(APP, one, one.services[0], "minio/minio:1")


def test_each_routed_port_is_a_route_on_its_hosts():
    spec = minio(replicas=2)
    (svc,) = spec.services
    ready = [
        container_spec(APP, DEP, spec, svc, n, "minio/minio:1", 41000 + 10 * n, more_host_ports={9001: 41001 + 10 * n})
        for n in (1, 2)
    ]
    own = names.route_id(APP, "minio")
    assert port_routes.desired(APP, spec, ready) == [
        RouteTarget(
            own, ("minio-s3.localhost", "s3.example.com"), ("http://127.0.0.1:41010", "http://127.0.0.1:41020"), "local"
        ),
        RouteTarget(
            f"{own}_9001", ("console.example.com",), ("http://127.0.0.1:41011", "http://127.0.0.1:41021"), "local"
        ),
    ]
    assert own == "app-app1-minio"
    long = port_routes.port_route_id("a" * 32, "s" * 25, 9001)  # its own route id is 62 characters
    assert names.ROUTE_ID_RE.fullmatch(long) and long.endswith("_9001")
    tls = route_tls.of_spec(minio(path_prefix="/files"), "team-1", APP)
    assert tls is not None and tls.paths == {own: "/files", f"{own}_9001": "/files"}


def test_each_routed_port_has_its_own_path():
    """Coolify's mindsdb: its GUI on 47334 on the whole host, its API port under ``/api`` on another host; a
    port without a path of its own keeps the service's, ``/`` is the whole host whatever the service's."""
    own = names.route_id(APP, "minio")
    api = {"port": 9001, "hosts": ["console.example.com"], "path": "/api"}
    tls = route_tls.of_spec(minio(port_hosts=[api]), "team-1", APP)
    assert tls is not None and tls.paths == {f"{own}_9001": "/api"}
    tls = route_tls.of_spec(minio(path_prefix="/s3", port_hosts=[api]), "team-1", APP)
    assert tls is not None and tls.paths == {own: "/s3", f"{own}_9001": "/api"}
    whole = {**api, "path": "/"}
    tls = route_tls.of_spec(minio(path_prefix="/s3", port_hosts=[whole]), "team-1", APP)
    assert tls is not None and tls.paths == {own: "/s3"}
    assert route_tls.of_spec(minio(port_hosts=[whole]), "team-1", APP) is None
    op = RouteOp("apply", f"{own}_9001", ("console.example.com",), ("http://127.0.0.1:41001",), "local")
    tls = route_tls.of_spec(minio(port_hosts=[api]), "team-1", APP)
    assert route_tls.apply_routes(op, 3, tls).model_dump(mode="json", exclude={"ts", "id"}) == {
        "route_id": f"{own}_9001",
        "hosts": ["console.example.com"],
        "upstreams": ["http://127.0.0.1:41001"],
        "generation": 3,
        "server_id": "local",
        "entry_point": "web",
        "path_prefix": "/api",
    }
    with pytest.raises(ValidationError, match="a path starts with '/'"):
        minio(port_hosts=[{**api, "path": "api"}])


def test_a_shared_host_routes_two_ports_under_two_paths():
    """The service's own port keeps a host of its ``shared_hosts`` under its path while its second port has
    it under another: two routes on the host, the longer path first in Traefik."""
    api = {"port": 9001, "hosts": ["s3.example.com"], "path": "/api"}
    spec = minio(port_hosts=[api], shared_hosts=["S3.example.com"])
    (svc,) = spec.services
    ready = [container_spec(APP, DEP, spec, svc, 1, "minio/minio:1", 41000, more_host_ports={9001: 41001})]
    own = names.route_id(APP, "minio")
    assert port_routes.desired(APP, spec, ready) == [
        RouteTarget(
            own, ("console.example.com", "minio-s3.localhost", "s3.example.com"), ("http://127.0.0.1:41000",), "local"
        ),
        RouteTarget(f"{own}_9001", ("s3.example.com",), ("http://127.0.0.1:41001",), "local"),
    ]
    assert port_routes.route_paths(APP, svc) == {f"{own}_9001": "/api"}
    assert minio(port_hosts=[api]).services[0].routed_ports()[0] == (
        9000,
        ["minio-s3.localhost", "console.example.com"],
    )


@pytest.mark.parametrize(
    ("port_hosts", "why", "shared"),
    [
        ([{"port": 9000, "hosts": ["console.example.com"]}], "port 9000 is routed twice", ()),
        ([{"port": 9001, "hosts": ["other.example.com"]}], "the host other.example.com of port 9001 is not a host", ()),
        (
            [{"port": 9001, "hosts": ["console.example.com"]}, {"port": 9002, "hosts": ["console.example.com"]}],
            "the host console.example.com is routed to two ports",
            (),
        ),
        (
            [{"port": 9001, "hosts": ["minio-s3.localhost", "s3.example.com", "console.example.com"]}],
            "no host is left to the service's port 9000",
            (),
        ),
        (  # a host the own port keeps, under the same path as the other port's
            [{"port": 9001, "hosts": ["console.example.com"]}],
            "the host console.example.com is routed to two ports under the path /",
            ["console.example.com"],
        ),
        (
            [{"port": 9001, "hosts": ["console.example.com"], "path": "/api"}],
            "the shared host other.example.com is not a host of the service",
            ["other.example.com"],
        ),
    ],
)
def test_more_ports_it_could_not_route_are_refused(port_hosts, why, shared):
    with pytest.raises(ValidationError, match=why):
        minio(port_hosts=port_hosts, shared_hosts=list(shared))
