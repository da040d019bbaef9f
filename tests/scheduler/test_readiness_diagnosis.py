"""Readiness tells why a web replica does not pass, within seconds, against the real engine: an app on
another port than the service's, an image whose EXPOSE names another port, a server that resets
connections, one that answers 500 with a body. Each reason names the cause; a correct app pays nothing."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid

import pytest

from berth_scheduler.adapters.ports import allocate_port
from berth_scheduler.adapters.readiness import NotReadyError
from berth_scheduler.domain.containers import container_spec
from tests.scheduler.test_docker_replicas import run, spec_of
from tests.support.images import DOCKER, python_image

pytestmark = [pytest.mark.docker]


def own_deployment() -> str:
    """A deployment id of this test's own: container names derive from it, and other files' tests run the
    same application name at the same time."""
    return uuid.uuid4().hex


def cgi_500(body: str) -> list[str]:
    """busybox httpd on $PORT whose / is a CGI answering 500 with ``body``."""
    cgi = f'#!/bin/sh\nprintf "HTTP/1.0 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\n{body}\\n"\n'
    script = (
        'mkdir -p /www/cgi-bin && printf "%s" "$H" > /www/cgi-bin/index && chmod +x /www/cgi-bin/index && '
        'echo "starting on $PORT" && exec httpd -f -p "$PORT" -h /www'
    )
    return ["sh", "-c", f"export H='{cgi}'; {script}"]


async def fails_with(docker, readiness, cs, timeout: float = 120) -> tuple[str, float]:
    await run(docker, cs)
    t0 = time.monotonic()
    with pytest.raises(NotReadyError) as err:
        await readiness.wait_ready(cs, time.time() + timeout)
    return str(err.value), time.monotonic() - t0


def web(image: str, command: list[str] | None, port: int = 80, path: str = "/") -> object:
    service = {"kind": "web", "name": "web", "port": port, "health_path": path}
    if command is not None:
        service["command"] = command
    return spec_of(image, [service])


async def test_an_app_on_a_hard_coded_other_port_fails_in_seconds(docker, readiness, busybox, app_id):
    spec = web(busybox, ["sh", "-c", "echo 'listening on 8080'; exec httpd -f -p 8080 -h /"])
    cs = container_spec(app_id, own_deployment(), spec, spec.services[0], 1, busybox, host_port=allocate_port())
    reason, took = await fails_with(docker, readiness, cs)
    assert "the app listens on 8080, not on 80; set the service port to 8080" in reason, reason
    assert "listening on 8080" in reason  # the container's last log lines
    assert took < 60, took  # well before the deadline (benchmarks/bench_diagnostics.py measures it)
    for _ in range(100):  # a read still under way when the wait ended finishes on its own, and removes its helper
        if not _helpers(cs.name):
            break
        await asyncio.sleep(0.05)
    assert not _helpers(cs.name)


@pytest.mark.slow  # the Debian Python image takes about 40 s to make the first time
async def test_a_python_app_on_a_hard_coded_port(docker, readiness, app_id):
    python = python_image()
    code = (
        "import http.server as h\n"
        "print('serving on 5000', flush=True)\n"
        "h.HTTPServer(('', 5000), h.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    spec = web(python, ["python3", "-c", code])
    cs = container_spec(app_id, own_deployment(), spec, spec.services[0], 1, python, host_port=allocate_port())
    reason, took = await fails_with(docker, readiness, cs)
    assert "the app listens on 5000, not on 80; set the service port to 5000" in reason, reason
    assert "serving on 5000" in reason
    assert took < 60, took  # well before the deadline (benchmarks/bench_diagnostics.py measures it)


async def test_an_image_exposing_another_port_with_nothing_listening(docker, readiness, busybox, app_id, unique):
    tag = f"berth-test/expose-{unique}:1"
    dockerfile = f'FROM {busybox}\nEXPOSE 3000\nCMD ["sh", "-c", "echo waiting for nothing; sleep 3600"]\n'
    subprocess.run(
        [DOCKER, "build", "-q", "-t", tag, "-"], input=dockerfile, text=True, check=True, capture_output=True
    )
    try:
        spec = web(tag, None)
        cs = container_spec(app_id, own_deployment(), spec, spec.services[0], 1, tag, host_port=allocate_port())
        reason, took = await fails_with(docker, readiness, cs)
        assert re.search(
            r"nothing listens on port 80 after \d s and the image exposes 3000; set the service port to 3000", reason
        ), reason
        assert "waiting for nothing" in reason
        assert 4.5 < took < 60, took
    finally:
        subprocess.run([DOCKER, "rm", "-f", cs.name], capture_output=True, check=False)
        subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True, check=False)


async def test_a_server_resetting_connections(docker, readiness, busybox, app_id):
    # nc runs `true`, which exits without reading the request: the kernel answers the unread data with a reset
    spec = web(busybox, ["sh", "-c", 'while true; do nc -l -p "$PORT" -e true; done'])
    cs = container_spec(app_id, own_deployment(), spec, spec.services[0], 1, busybox, host_port=allocate_port())
    reason, took = await fails_with(docker, readiness, cs)
    assert "connection reset, the app listens on port 80 but closes connections with no HTTP answer" in reason, reason
    assert took < 60, took  # well before the deadline (benchmarks/bench_diagnostics.py measures it)


async def test_a_server_answering_500_with_a_body(docker, readiness, busybox, app_id):
    spec = web(busybox, cgi_500("database is down"), path="/cgi-bin/index")
    cs = container_spec(app_id, own_deployment(), spec, spec.services[0], 1, busybox, host_port=allocate_port())
    reason, took = await fails_with(docker, readiness, cs)
    assert "GET /cgi-bin/index answered 500: database is down (for 5 s)" in reason, reason
    assert "starting on 80" in reason
    assert 4.5 < took < 60, took


def _helpers(replica: str) -> list[str]:
    out = subprocess.run(
        [DOCKER, "ps", "-aq", "--filter", f"name={replica}-sockets"], capture_output=True, text=True, check=False
    )
    return out.stdout.split()


async def test_a_correct_app_runs_no_sockets_helper(docker, readiness, busybox, app_id):
    spec = web(busybox, ["sh", "-c", 'mkdir /w && echo ok > /w/index.html && exec httpd -f -p "$PORT" -h /w'])
    cs = container_spec(app_id, own_deployment(), spec, spec.services[0], 1, busybox, host_port=allocate_port())
    since = f"{time.time():.6f}"  # after the earlier tests' helpers (the same replica name)
    await run(docker, cs)
    t0 = time.monotonic()
    await readiness.wait_ready(cs, time.time() + 20)
    took = time.monotonic() - t0
    until = str(int(time.time()) + 1)
    events = [DOCKER, "events", "--since", since, "--until", until, "--format", "{{.Actor.Attributes.name}}"]
    filters = ["--filter", "type=container", "--filter", "event=create"]
    created = subprocess.run([*events, *filters], capture_output=True, text=True, check=True).stdout.split()
    assert cs.name in created  # the events are read (so the next assertion can fail)
    # a helper runs only once the GET failed for sockets_after_s (a loaded machine can take that long)
    helpers = [n for n in created if n == f"{cs.name}-sockets"]
    assert helpers == [] or took >= readiness.config.sockets_after_s, (created, took)
