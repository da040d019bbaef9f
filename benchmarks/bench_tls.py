"""HTTPS: certificate issuance against a real ACME server, TLS handshakes, and HTTPS against HTTP requests/s
through Traefik, in the same run.

Setup: nats-server and Postgres from the project's launchers, proxy-sync in this process, Debian's pebble
and pebble-challtestsrv on loopback (``tests/proxy/acme_support.py``), Traefik with its HTTPS entry point
and ACME resolvers pointed at pebble.

1. ``issue_s``: from the ``cmd.route.apply`` with ``tls.acme`` (HTTP-01) published to the first TLS
   handshake with the host's name that presents pebble's certificate (polled every 20 ms):
   proxy-sync's DNS check, the route file, Traefik's ACME order, pebble's validation, Traefik serving it.
   ``issued_event_s``: to ``evt.certificate.issued`` (the certificate watch runs every 0.3 s here).
2. ``handshake_p99_ms``: ``HANDSHAKES`` new TCP connections and TLS handshakes with the host's name (SNI)
   to Traefik's HTTPS port, one after the other, from this process (Python's ssl).
3. ``https_rps_ratio``: ``wrk`` (``CONNECTIONS`` connections, ``DURATION_S`` s each) against the same route
   over HTTPS and over HTTP (``redirect: never``), HTTPS requests/s over HTTP requests/s. The upstream is
   Traefik's own ``/ping`` on its API entry point (Go, not the bottleneck). Without ``wrk``, a Python
   keep-alive loop measures both.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

from benchmarks.support.api_load import parse_wrk
from benchmarks.support.api_server import Infra
from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import ApplyRoutes
from berth_common.catalogue.tls import TlsOptions
from berth_common.db.provision import provision
from berth_common.runtime import serve
from berth_proxy_sync.adapters import tls_probe
from berth_proxy_sync.bootstrap import spec
from berth_proxy_sync.domain import served
from berth_proxy_sync.settings import ProxySyncSettings
from tests.proxy.acme_support import Pebble, TlsTraefik

NAME = "tls"
GOALS = {
    "issue_s": ("<=", 10.0),
    "handshake_p99_ms": ("<=", 50.0),
    "https_rps_ratio": (">=", 0.5),
}
HOST = "bench.berth.test"
HANDSHAKES = 300
CONNECTIONS = 32
DURATION_S = 8


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def handshakes(port: int, n: int) -> list[float]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    took = []
    for _ in range(n):
        start = time.perf_counter()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=HOST),
        ):
            took.append((time.perf_counter() - start) * 1000)
    return took


def wrk_rps(url: str) -> dict[str, Any]:
    argv = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--latency", "-H", f"Host: {HOST}", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=DURATION_S + 60, check=True).stdout
    return parse_wrk(out)


async def loop_rps(port: int, tls: bool) -> dict[str, Any]:
    """Requests/s of ``CONNECTIONS`` keep-alive connections for ``DURATION_S`` (Python; wrk is absent)."""
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    request = f"GET /ping HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    done = [0]
    deadline = time.monotonic() + DURATION_S

    async def client() -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=HOST if tls else None
        )
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            fields = [line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line]
            length = int(next(v for k, v in fields if k.strip().lower() == b"content-length"))
            await reader.readexactly(length)
            done[0] += 1
        writer.close()

    await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    return {"tool": "python", "rps": done[0] / DURATION_S, "requests": done[0]}


async def run() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="berth-bench-tls-"))
    infra = Infra(root).start()
    traefik = TlsTraefik(root / "t")
    pebble = Pebble(root / "pebble", traefik.web_port, traefik.websecure_port).start()
    traefik.directory_url, traefik.ca_bundle = pebble.directory_url, str(pebble.ca_bundle)
    traefik.start()
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    nc = bus = None
    try:
        await infra.api_database()  # Postgres accepts sessions
        urls = await provision(infra.admin_url, infra.secret_key, ("proxy-sync",))
        settings = ProxySyncSettings(
            nats_url=infra.nats_url,
            database_url=urls["proxy-sync"],
            secret_key=infra.secret_key,
            data_dir=root / "data",
            http_port=0,
            traefik_dynamic_dir=traefik.dynamic_dir,
            traefik_api_url=traefik.api_url,
            proxy_tls_port=traefik.websecure_port,
            tls_server_addresses="127.0.0.1",
            tls_dns_server=pebble.dns_server,
            cert_watch_interval_s=0.3,
        )
        task = asyncio.create_task(serve(spec(settings), stop))
        nc = await nats.connect(infra.nats_url)
        issued: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        async def on_event(msg: Any) -> None:
            if json.loads(msg.data)["data"].get("host") == HOST and not issued.done():
                issued.set_result(time.monotonic())

        await nc.subscribe("evt.certificate.issued", cb=on_event)
        await subscriptions_confirmed(nc)
        bus = Bus("scheduler", infra.nats_url)
        for _ in range(100):
            try:
                await bus.connect()
                break
            except Exception:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # proxy-sync's consumers
        upstream = f"http://127.0.0.1:{traefik.api_port}"
        tls = TlsOptions(acme=True, redirect="never")
        started = time.monotonic()
        await bus.publish(ApplyRoutes(route_id="bench-tls", hosts=[HOST], upstreams=[upstream], tls=tls))
        while True:
            der = await tls_probe.leaf("127.0.0.1", traefik.websecure_port, HOST, timeout_s=2)
            if der is not None and served.read(der).serves(HOST, served.dt.datetime.now(served.dt.UTC)):
                break
            if time.monotonic() - started > 120:
                raise TimeoutError(f"no certificate from pebble: {(traefik.root / 'traefik.log').read_text()[-2000:]}")
            await asyncio.sleep(0.02)
        issue_s = time.monotonic() - started
        issued_event_s = await asyncio.wait_for(issued, 30) - started
        took = await asyncio.to_thread(handshakes, traefik.websecure_port, HANDSHAKES)
        if shutil.which("wrk"):
            http = await asyncio.to_thread(wrk_rps, f"http://127.0.0.1:{traefik.web_port}/ping")
            https = await asyncio.to_thread(wrk_rps, f"https://127.0.0.1:{traefik.websecure_port}/ping")
        else:
            http = await loop_rps(traefik.web_port, False)
            https = await loop_rps(traefik.websecure_port, True)
        return {
            "issue_s": round(issue_s, 2),
            "issued_event_s": round(issued_event_s, 2),
            "handshake_p50_ms": round(_pct(took, 50), 2),
            "handshake_p99_ms": round(_pct(took, 99), 2),
            "handshakes": len(took),
            "http_rps": round(http["rps"], 1),
            "https_rps": round(https["rps"], 1),
            "https_rps_ratio": round(https["rps"] / http["rps"], 3),
            "http_p99_ms": http.get("p99_ms"),
            "https_p99_ms": https.get("p99_ms"),
            "load_tool": http["tool"],
            "connections": CONNECTIONS,
            "duration_s": DURATION_S,
        }
    finally:
        if bus is not None:
            await bus.close()
        if nc is not None:
            await nc.close()
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 30)
        traefik.stop()
        pebble.stop()
        infra.stop()
        shutil.rmtree(root, ignore_errors=True)
