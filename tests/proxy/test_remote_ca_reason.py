"""The CA's answer in a certificate failure on a remote server: its Traefik container's log read through
the server's client of the Docker connection factory (the engine's log answer, its frames joined), and the
certificate watch putting the CA's line into the reason (as it does with the local log file).

- as data: the log call, and the engine's multiplexed frames joined (an unframed answer kept as it is);
- as adapter: a real container on the local engine writes Traefik's ACME error line to stderr; the log read
  through the engine finds it, and the CA's answer is read from it;
- in the watch: a site that reads its log gives the reason the CA's answer; one whose log cannot be read
  gives none (the event goes out without it);
- on a namespace server (root, pebble's DNS): its Traefik cannot reach the ACME directory, and the
  ``evt.certificate.failed`` it causes ends with Traefik's ACME error for the host from that server's
  container log.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import aiodocker
import pytest

from berth_common.bus import Bus
from berth_common.catalogue import ApplyRoutes
from berth_common.catalogue.tls import TlsOptions
from berth_common.db.provision import provision
from berth_common.docker import DockerEngines, local_engine
from berth_proxy_sync.adapters.server_proxy import log_tail
from berth_proxy_sync.adapters.sites import Site
from berth_proxy_sync.domain import served
from berth_proxy_sync.domain import server_proxy as sp
from berth_proxy_sync.settings import ProxySyncSettings
from berth_proxy_sync.usecases.cert_watch import CertificateWatch
from tests.proxy.acme_support import apply_on_new_server, available
from tests.proxy.test_tls_acme import events, scheduler_bus, stack  # noqa: F401 (its fixtures)
from tests.support.images import TEST_LABEL, busybox_image

HOST = "a.example.com"
LINE = (
    "\x1b[90m2026-12-05T08:50:01Z\x1b[0m \x1b[31mERR\x1b[0m provider.go:457 > Unable to obtain ACME certificate "
    'for domains \x1b[36merror=\x1b[0m"unable to generate a certificate for the domains [a.example.com]: '
    'acme: error: 403 :: urn:ietf:params:acme:error:unauthorized :: \\"no TXT record\\"" '
    '\x1b[36mACME CA=\x1b[0mhttps://ca/dir domains=["a.example.com"] providerName=berth-dns.acme'
)
ANSWER = (
    "unable to generate a certificate for the domains [a.example.com]: acme: error: 403 :: "
    'urn:ietf:params:acme:error:unauthorized :: "no TXT record"'
)


def frame(stream: int, text: str) -> bytes:
    data = text.encode()
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_the_log_call_and_the_engines_frames():
    assert sp.container_logs() == sp.Call("GET", "/v1.41/containers/berth-traefik/logs?stdout=1&stderr=1&tail=2000")
    assert sp.container_logs("x y", 5).path == "/v1.41/containers/x%20y/logs?stdout=1&stderr=1&tail=5"
    raw = frame(1, "started\n") + frame(2, LINE + "\n") + frame(1, "ok\n")
    assert sp.demux_logs(raw) == f"started\n{LINE}\nok\n"
    assert sp.demux_logs(b"plain text from a TTY\n") == "plain text from a TTY\n"
    assert sp.demux_logs(frame(1, "cut short")[:-3]) == frame(1, "cut short")[:-3].decode()
    assert sp.demux_logs(b"") == ""
    assert served.acme_reason(sp.demux_logs(raw), HOST) == ANSWER


async def test_a_containers_log_is_read_through_the_engine_and_gives_the_cas_answer():
    name = f"berth-test-traefik-log-{uuid.uuid4().hex[:8]}"
    client = aiodocker.Docker()
    # both streams (Traefik's errors may go to either); a pause between them keeps the engine's order
    script = f"echo 'Traefik started'; sleep 0.3; printf '%s\\n' '{LINE}' >&2; sleep 0.3; echo 'last line'"
    try:
        container = await client.containers.create(
            {
                "Image": busybox_image(),
                "Cmd": ["sh", "-c", script],
                "Labels": dict([TEST_LABEL.split("=")]),
            },
            name=name,
        )
        await container.start()
        await asyncio.wait_for(container.wait(), 30)
        engines = DockerEngines(local_engine(None))  # read as proxy-sync reads it: Berth's own engine client
        try:
            text = await log_tail(engines.api(), name)
            assert text.splitlines() == ["Traefik started", LINE, "last line"]
            assert served.acme_reason(text, HOST) == ANSWER
            assert (await log_tail(engines.api(), name, tail=1)).splitlines() == ["last line"]
        finally:
            await engines.close()
    finally:
        try:
            await (await client.containers.get(name)).delete(force=True)
        except aiodocker.exceptions.DockerError:
            pass
        await client.close()


class _NoTraefik:
    async def close(self) -> None:
        return None


def _site(read_log) -> Site:
    return Site("server1", files=None, traefik=_NoTraefik(), read_log=read_log)  # type: ignore[arg-type]


async def test_the_watch_puts_the_servers_ca_answer_into_the_reason():
    watch = CertificateWatch(sites=None, routes=None, https=None, bus=None, sessionmaker=None)  # type: ignore[arg-type]

    async def log() -> str:
        return "\n".join(["other", LINE])

    async def broken() -> str:
        raise ConnectionError("engine gone")

    assert await watch._traefik_reason(_site(log), HOST) == ANSWER
    assert await watch._traefik_reason(_site(log), "b.example.com") is None
    assert await watch._traefik_reason(_site(broken), HOST) is None
    assert await watch._traefik_reason(_site(None), HOST) is None  # a server without a log reader


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not available(), reason="namespace servers need root; pebble's DNS")
async def test_a_servers_acme_failure_carries_the_answer_from_its_traefik_containers_log(
    stack,  # noqa: F811
    tmp_root,
    nats_server,
    database,
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    unique,
):
    """A namespace server's Traefik asks an ACME server it cannot reach (the directory is on this
    machine's loopback): the failure's reason is Traefik's own ACME error for the host, read from the
    server's container log through the Docker connection factory."""
    from tests.proxy.support import ProxySync
    from tests.support.testservers import running_servers, server_changed

    pebble, local = stack
    sid, host = f"ca{unique}", f"ca-{unique}.berth.test"
    urls = await provision(database, "test-secret", ("proxy-sync",))
    settings = ProxySyncSettings(
        nats_url=nats_server.url,
        database_url=urls["proxy-sync"],
        http_port=0,
        traefik_dynamic_dir=local.dynamic_dir,
        traefik_api_url=local.api_url,
        server_traefik_root=str(tmp_root / f"servers-{unique}"),
        server_connect_timeout_s=3.0,
        cert_watch_interval_s=0.3,
        cert_issue_timeout_s=5,
        tls_dns_server=pebble.dns_server,
        acme_directory_url=pebble.directory_url,  # loopback of this machine: the server cannot reach it
        acme_ca_bundle=str(pebble.ca_bundle),
    )
    svc = await ProxySync(settings).start()
    api = Bus("api", nats_server.url)
    await api.connect()
    try:
        with running_servers(1) as [server]:
            pebble.add_a(host, [server.address])  # the DNS check passes: the CA is asked
            await api.publish(server_changed(server, sid, team_id="team1", name="edge-ca"))
            msg = ApplyRoutes(
                route_id=f"ca-{unique}",
                server_id=sid,
                hosts=[host],
                upstreams=["http://127.0.0.1:9"],
                tls=TlsOptions(acme=True),
            )
            await apply_on_new_server(scheduler_bus, events, msg)
            failed = await events.wait("evt.certificate.failed", timeout=120, host=host)
            assert failed["server_id"] == sid and failed["stage"] == "acme", failed
            logged = server.docker("logs", "berth-traefik")
            assert host in logged and "Unable to obtain ACME certificate" in logged
            assert failed["reason"].startswith(f"no certificate from the ACME server for {host} after ")
            from_log = served.acme_reason(logged, host)
            assert from_log is not None and failed["reason"].endswith(f": {from_log}"), failed["reason"]
            server.docker("rm", "-f", "berth-traefik", "berth-traefik-net")
    finally:
        await api.close()
        await svc.stop()
