"""The CA's answer in a certificate failure on a remote server: its Traefik container's log read through
the server's client of the Docker connection factory (the engine's log answer, its frames joined), and the
certificate watch putting the CA's line into the reason (as it does with the local log file).

- as data: the log call, and the engine's multiplexed frames joined (an unframed answer kept as it is);
- as adapter: a real container on the local engine writes Traefik's ACME error line to stderr; the log read
  through the engine finds it, and the CA's answer is read from it;
- in the watch: a site that reads its log gives the reason the CA's answer; one whose log cannot be read
  gives none (the event goes out without it).
"""

from __future__ import annotations

import asyncio
import uuid

import aiodocker

from berth_proxy_sync.adapters.server_proxy import log_tail
from berth_proxy_sync.adapters.sites import Site
from berth_proxy_sync.domain import served
from berth_proxy_sync.domain import server_proxy as sp
from berth_proxy_sync.usecases.cert_watch import CertificateWatch
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
        text = await log_tail(client, name)
        assert text.splitlines() == ["Traefik started", LINE, "last line"]
        assert served.acme_reason(text, HOST) == ANSWER
        assert (await log_tail(client, name, tail=1)).splitlines() == ["last line"]
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
