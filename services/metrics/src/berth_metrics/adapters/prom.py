"""Prometheus exposition of the latest readings, served by ``berth_common.httpd`` at ``/metrics`` on the
service's HTTP port to a caller with a scrape token (``berth_common.scrape``).

The platform's token reads every container's series labelled by container id and server only (no team,
application, deployment or container name), the server's series and the process's own; a team's token
reads that team's containers only, with their Berth labels."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from berth_common.scrape import ScrapeScope, scope_of
from berth_metrics.domain.readings import Snapshot

CONTAINER_LABELS = ("container_id", "name", "app", "service", "deployment", "team", "server")
PLATFORM_LABELS = ("container_id", "server")  # the platform token's view: no team's metadata

COLLECT_SECONDS = Histogram(
    "berth_metrics_collect_seconds",
    "Time one collection of every container and the server took",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
COLLECT_ERRORS = Counter("berth_metrics_collect_errors", "Containers whose reading failed", ["stage"])


class LatestCollector(Collector):
    """Gauges and counters of the last reading of the containers ``scope`` sees, and of the server for
    the platform's scope."""

    def __init__(self, snapshot: Callable[[], Snapshot], server: str, scope: ScrapeScope | None = None) -> None:
        self._snapshot = snapshot
        self._server = server
        self._scope = scope or ScrapeScope()

    def describe(self) -> list[Metric]:
        return []  # computed on every scrape: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        team = self._scope.team
        labelled = CONTAINER_LABELS if team is not None else PLATFORM_LABELS
        g = {
            "cpu": GaugeMetricFamily("berth_container_cpu_percent", "CPU % (100 = one core)", labels=labelled),
            "mem": GaugeMetricFamily("berth_container_memory_used_bytes", "Memory used", labels=labelled),
            "lim": GaugeMetricFamily("berth_container_memory_limit_bytes", "Memory limit", labels=labelled),
            "restarts": GaugeMetricFamily("berth_container_restarts", "Restart count", labels=labelled),
            "health": GaugeMetricFamily(
                "berth_container_health", "0 healthy, 1 starting, 2 unhealthy", labels=labelled
            ),
        }
        c = {
            "rx": CounterMetricFamily("berth_container_network_receive_bytes", "Received", labels=labelled),
            "tx": CounterMetricFamily("berth_container_network_transmit_bytes", "Sent", labels=labelled),
            "rd": CounterMetricFamily("berth_container_blkio_read_bytes", "Block I/O read", labels=labelled),
            "wr": CounterMetricFamily("berth_container_blkio_write_bytes", "Block I/O written", labels=labelled),
        }
        for r in snap.containers.values():
            if team is None:
                labels = [r.container_id[:12], self._server]
            elif r.labels.get("team") != team:
                continue
            else:
                labels = [
                    r.container_id[:12],
                    r.name,
                    *(r.labels.get(k, "") for k in CONTAINER_LABELS[2:6]),
                    self._server,
                ]
            for key, value in (
                ("cpu", r.cpu_pct),
                ("mem", r.mem_used),
                ("lim", r.mem_limit),
                ("restarts", r.restarts),
                ("health", r.health_code),
            ):
                if value is not None:
                    g[key].add_metric(labels, float(value))
            for key, value in (("rx", r.net_rx), ("tx", r.net_tx), ("rd", r.blk_read), ("wr", r.blk_write)):
                if value is not None:
                    c[key].add_metric(labels, float(value))
        yield from g.values()
        yield from c.values()
        if team is None:
            yield from self._server_metrics(snap)

    def _server_metrics(self, snap: Snapshot) -> Iterator[Metric]:
        s = snap.server
        if s is None:
            return
        server = [s.server]
        for name, doc, value in (
            ("berth_server_cpu_percent", "CPU % of all cores (0-100)", s.cpu_pct),
            ("berth_server_memory_used_bytes", "Memory used (total - available)", s.mem_used),
            ("berth_server_memory_total_bytes", "Memory total", s.mem_total),
            ("berth_server_load1", "Load average, 1 minute", s.load1),
            ("berth_server_load5", "Load average, 5 minutes", s.load5),
            ("berth_server_load15", "Load average, 15 minutes", s.load15),
        ):
            if value is not None:
                family = GaugeMetricFamily(name, doc, labels=["server"])
                family.add_metric(server, float(value))
                yield family
        used = GaugeMetricFamily("berth_server_disk_used_bytes", "Disk used", labels=["server", "mount", "device"])
        total = GaugeMetricFamily("berth_server_disk_total_bytes", "Disk size", labels=["server", "mount", "device"])
        for d in s.disks:
            used.add_metric([s.server, d.path, d.device], float(d.used))
            total.add_metric([s.server, d.path, d.device], float(d.total))
        yield used
        yield total


def exposition(snapshot: Callable[[], Snapshot], server: str, platform_token: str) -> Callable[[str], bytes | None]:
    """What ``/metrics`` answers for a request's ``Authorization`` header: None (refused) without a valid
    scrape token (always, when no platform token is configured), else the caller's scope's series."""

    def answer(authorization: str) -> bytes | None:
        scope = scope_of(authorization, platform_token)
        if scope is None:
            return None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LatestCollector(snapshot, server, scope))
        body = generate_latest(registry)
        return body + generate_latest(REGISTRY) if scope.team is None else body

    return answer
