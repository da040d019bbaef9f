"""Diagnostics: seconds from the deploy request to ``failed`` for apps that will never pass readiness.

The platform runs as a user runs it (``berth up`` on a temporary data dir and free ports). Each case is a
new web application on port 80 (readiness ``GET /``, the deployment's readiness timeout left at its
120 s default) whose deployment can only fail: a Python app listening on a hard-coded 5000, an image whose
``EXPOSE 3000`` is where its server listens, an image exposing 3000 with nothing listening at all, a server
that resets every connection, one that answers 500 with a body. ``fail_s`` is from the deploy request to
the ``evt.deployment.failed`` event; every reason must name the cause (the case's ``expect`` text), or the
benchmark fails. Images are made locally (busybox; the Debian Python base image of the tests).

``static_80_ok_s``: the case that must not fail any more, a local git repository holding only ``index.html``
deployed with ``dockerfile: null`` as a web service on port 80, from the deploy request to ``succeeded``
(Berth's detection builds it; the generated server listens on ``$PORT``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.support.events import EventLog
from benchmarks.support.platform import Api, BerthUp, busybox_image
from berth_cli import baseimages

NAME = "diagnostics"
GOALS = {"fail_s_max": ("<=", 10.0)}
TERMINAL = ("evt.deployment.succeeded", "evt.deployment.failed", "evt.deployment.cancelled")
PY_SERVER = (
    "import http.server as h\n"
    "print('serving on 5000', flush=True)\n"
    "h.HTTPServer(('', 5000), h.SimpleHTTPRequestHandler).serve_forever()\n"
)
CGI_500 = '#!/bin/sh\nprintf "HTTP/1.0 500 Internal Server Error\\r\\n\\r\\ndatabase is down\\n"\n'


def _build(tag: str, dockerfile: str) -> str:
    subprocess.run(
        [baseimages.DOCKER, "build", "-q", "-t", tag, "-"], input=dockerfile, text=True, check=True, capture_output=True
    )
    return tag


def cases(busybox: str, python: str, tag: str) -> list[dict[str, Any]]:
    """(name, image, command, health path, what the reason must say)."""
    exposed = _build(f"{tag}-expose", f'FROM {busybox}\nEXPOSE 3000\nCMD ["httpd", "-f", "-p", "3000", "-h", "/"]\n')
    idle = _build(f"{tag}-idle", f'FROM {busybox}\nEXPOSE 3000\nCMD ["sleep", "3600"]\n')
    serve_500 = f"mkdir -p /w/cgi-bin && printf '%s' '{CGI_500}' > /w/cgi-bin/i && chmod +x /w/cgi-bin/i && "
    return [
        {
            "name": "python_hard_coded_port",
            "image": python,
            "command": ["python3", "-c", PY_SERVER],
            "expect": "the app listens on 5000, not on 80; set the service port to 5000",
        },
        {"name": "expose_3000_listening", "image": exposed, "expect": "the app listens on 3000, not on 80"},
        {"name": "expose_3000_idle", "image": idle, "expect": "the image exposes 3000; set the service port to 3000"},
        {
            "name": "connection_reset",
            "image": busybox,
            "command": ["sh", "-c", 'while true; do nc -l -p "$PORT" -e true; done'],
            "expect": "connection reset, the app listens on port 80",
        },
        {
            "name": "http_500",
            "image": busybox,
            "command": ["sh", "-c", serve_500 + 'exec httpd -f -p "$PORT" -h /w'],
            "path": "/cgi-bin/i",
            "expect": "answered 500: database is down",
        },
    ]


async def fail_once(api: Api, events: EventLog, env_id: str, case: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = {"kind": "web", "name": "web", "port": 80, "health_path": case.get("path", "/")}
    if "command" in case:
        service["command"] = case["command"]
    body = {
        "name": case["name"].replace("_", "-"),
        "source": {"kind": "image", "image": case["image"], "pull_policy": "if-missing"},
    }
    app = await api._call(
        "POST", f"/v1/environments/{env_id}/applications", 201, {**body, "services": [service], "stop_timeout_s": 2}
    )
    api.platform.apps.append(app["id"])
    t0 = time.monotonic()
    dep = await api.deploy(app["id"])
    end = await events.wait_for(lambda e: e.type in TERMINAL and e.data.get("deployment_id") == dep["id"], 150)
    took = time.monotonic() - t0
    reason = str(end.data.get("reason") or "")
    if end.type != "evt.deployment.failed" or case["expect"] not in reason:
        raise RuntimeError(f"{case['name']}: {end.type} after {took:.1f}s, reason {reason!r}")
    return {"case": case["name"], "fail_s": round(took, 2), "reason": reason.split("\n", 1)[0][:300]}


def static_repo(root: Path) -> str:
    """A local git repository holding only ``index.html``: its path."""
    repo = root / "site"
    repo.mkdir()
    (repo / "index.html").write_text("static site on port 80\n")
    author = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], [*author, "commit", "-q", "-m", "site"]):
        subprocess.run(["git", *argv], cwd=repo, check=True, capture_output=True)
    return str(repo)


async def static_on_80(api: Api, events: EventLog, env_id: str, repository: str) -> float:
    """Seconds from the deploy request to ``succeeded`` of the detected static site on port 80."""
    body = {
        "name": "static-80",
        "source": {"kind": "git", "repository": repository, "branch": "main", "dockerfile": None},
        "services": [{"kind": "web", "name": "web", "port": 80, "health_path": "/"}],
        "stop_timeout_s": 2,
    }
    app = await api._call("POST", f"/v1/environments/{env_id}/applications", 201, body)
    api.platform.apps.append(app["id"])
    t0 = time.monotonic()
    dep = await api.deploy(app["id"])
    await events.finished(dep["id"], timeout=180)  # raises unless it succeeded
    return round(time.monotonic() - t0, 2)


async def run() -> dict[str, Any]:
    busybox = busybox_image()
    baseimages.ensure_base_images([baseimages.PYTHON_IMAGE])
    tag = f"berth-bench/diagnostics-{os.getpid()}"
    made = cases(busybox, baseimages.PYTHON_IMAGE, tag)
    root = Path(tempfile.mkdtemp(prefix="berth-bench-diag-"))
    platform = await asyncio.to_thread(BerthUp(extra_env={"BERTH_ALLOW_LOCAL_GIT": "true"}).start)
    api = Api(platform)
    events = await EventLog(platform.events_url).start()
    try:
        env_id = await api.environment(f"bench-diagnostics-{os.getpid()}")
        samples = [await fail_once(api, events, env_id, case) for case in made]
        static_s = await static_on_80(api, events, env_id, static_repo(root))
    finally:
        await events.close()
        await api.close()
        await asyncio.to_thread(platform.stop)
        for suffix in ("expose", "idle"):
            subprocess.run([baseimages.DOCKER, "rmi", "-f", f"{tag}-{suffix}"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
        listed = [baseimages.DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}}", "berth/static-80"]
        built = subprocess.run(listed, capture_output=True, text=True, check=False).stdout.split()
        if built:
            subprocess.run([baseimages.DOCKER, "rmi", "-f", *built], capture_output=True, check=False)
    fails = [s["fail_s"] for s in samples]
    return {
        "cases": len(samples),
        "fail_s_max": max(fails),
        "fail_s_p50": round(statistics.median(fails), 2),
        "samples": samples,
        "static_80_ok_s": static_s,
        "readiness_timeout_s": 120,
        "path": "REST API of `berth up` (split mode) -> scheduler -> Docker; readiness with its socket look",
    }
