"""Berth's own detection for a repository without a Dockerfile, and the Dockerfile it generates.

Order: Go (``go.mod``), Node (``package.json``), Python (``requirements.txt`` or ``pyproject.toml``), then a
static site (``index.html``). Every generated Dockerfile names official base images (``python:3.12-slim``);
the image map turns them into local images before the build. Values taken from the repository (a
Procfile command, dependency names) are written as JSON strings in exec-form instructions, so they can
never add an instruction or reach a shell at build time.

A generated image listens on ``$PORT``: the scheduler sets it to the web service's port, so the port the
user configured is the port the app listens on (``PORT`` defaults to 8080 for a plain ``docker run``). No
``EXPOSE`` names a fixed port that could contradict the service's.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

PORT = 8080
GENERATED_DIR = ".berth"
GENERATED_PATH = f"{GENERATED_DIR}/Dockerfile"
PYTHON_IMAGE = "python:3.12-slim"
NODE_IMAGE = "node:20-slim"
GO_IMAGE = "golang:1.22"
STATIC_IMAGE = "busybox:1.36"
PROBED_FILES = ("Procfile", "package.json", "requirements.txt", "pyproject.toml", "go.mod")
MAX_PROBE_BYTES = 256 * 1024
_STATIC_SERVE = 'exec httpd -f -v -p "$PORT" -h /www'  # the port the scheduler gives the web service

Kind = Literal["go", "node", "python", "static"]
_GO_VERSION = re.compile(r"^go\s+(\d+\.\d+)(?:\.\d+)?\s*$", re.MULTILINE)
_PROCFILE_WEB = re.compile(r"^web\s*:\s*(.+?)\s*$", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class DetectionFailed(ValueError):
    """The repository has no Dockerfile and nothing Berth knows how to build; the message says what to add."""


@dataclass(frozen=True)
class Probe:
    """What detection looks at: the names at the build context's root and the text of a few files."""

    names: frozenset[str]
    texts: Mapping[str, str]


@dataclass(frozen=True)
class Detection:
    kind: Kind
    dockerfile: str
    summary: str


def _j(*words: str) -> str:
    return json.dumps(list(words))


def procfile_web(text: str | None) -> str | None:
    """The ``web:`` command of a Procfile, if any (control characters refused)."""
    if not text:
        return None
    m = _PROCFILE_WEB.search(text.replace("\r\n", "\n"))
    if m is None:
        return None
    command = m.group(1)
    if _CONTROL.search(command):
        raise DetectionFailed("the Procfile's web: command contains control characters")
    return command


def _requirements(text: str | None) -> list[str]:
    if not text:
        return []
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _pyproject_dependencies(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DetectionFailed(f"pyproject.toml is not valid TOML: {exc}") from None
    deps = data.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise DetectionFailed("pyproject.toml: [project] dependencies must be a list of strings")
    for dep in deps:
        if _CONTROL.search(dep) or dep.strip().startswith("-"):
            raise DetectionFailed(f"pyproject.toml: invalid dependency {dep[:100]!r}")
    return [d.strip() for d in deps if d.strip()]


def _cmd_for(web: str | None, default: list[str]) -> str:
    if web is not None:
        return f"CMD {_j('/bin/sh', '-c', web)}"
    return f"CMD {json.dumps(default)}"


def _python(probe: Probe) -> Detection:
    web = procfile_web(probe.texts.get("Procfile"))
    reqs = _requirements(probe.texts.get("requirements.txt"))
    deps = [] if "requirements.txt" in probe.names else _pyproject_dependencies(probe.texts.get("pyproject.toml"))
    if web is not None:
        default: list[str] = []
        summary = "Python, web command from the Procfile"
    elif "manage.py" in probe.names:
        default = ["/bin/sh", "-c", f"exec python3 manage.py runserver 0.0.0.0:${{PORT:-{PORT}}}"]
        summary = "Python (Django manage.py runserver)"
    elif "app.py" in probe.names or "main.py" in probe.names:
        script = "app.py" if "app.py" in probe.names else "main.py"
        default = ["python3", script]
        summary = f"Python, python3 {script}"
    else:
        raise DetectionFailed(
            "Python project detected but no start command: add a Procfile with a 'web: <command>' line "
            "(listen on $PORT), or an app.py / main.py, or a Dockerfile"
        )
    lines = [
        f"FROM {PYTHON_IMAGE}",
        "WORKDIR /app",
        f"ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT={PORT}",
    ]
    if reqs:
        lines += [
            "COPY requirements.txt ./",
            f"RUN {_j('python3', '-m', 'pip', 'install', '--no-cache-dir', '-r', 'requirements.txt')}",
        ]
    elif deps:
        lines.append(f"RUN {_j('python3', '-m', 'pip', 'install', '--no-cache-dir', *deps)}")
    lines += ["COPY . .", _cmd_for(web, default)]
    return Detection("python", "\n".join(lines) + "\n", summary)


def _node(probe: Probe) -> Detection:
    try:
        pkg = json.loads(probe.texts.get("package.json") or "{}")
    except json.JSONDecodeError as exc:
        raise DetectionFailed(f"package.json is not valid JSON: {exc}") from None
    if not isinstance(pkg, dict):
        raise DetectionFailed("package.json must hold a JSON object")
    web = procfile_web(probe.texts.get("Procfile"))
    raw_scripts = pkg.get("scripts")
    scripts: dict[str, Any] = raw_scripts if isinstance(raw_scripts, dict) else {}
    main = pkg.get("main")
    if web is not None:
        default: list[str] = []
        summary = "Node, web command from the Procfile"
    elif isinstance(scripts.get("start"), str) and scripts["start"].strip():
        default = ["npm", "start"]
        summary = "Node, npm start"
    elif isinstance(main, str) and re.fullmatch(r"[A-Za-z0-9_./-]{1,200}", main) and ".." not in main:
        default = ["node", main]
        summary = f"Node, node {main}"
    else:
        raise DetectionFailed("Node project detected but package.json has no scripts.start (nor main): add one")
    deps = pkg.get("dependencies")
    lines = [f"FROM {NODE_IMAGE}", "WORKDIR /app", f"ENV NODE_ENV=production PORT={PORT}"]
    if isinstance(deps, dict) and deps:
        lines.append("COPY package*.json ./")
        install = (
            ("npm", "ci", "--omit=dev") if "package-lock.json" in probe.names else ("npm", "install", "--omit=dev")
        )
        lines.append(f"RUN {_j(*install)}")
    lines += ["COPY . .", _cmd_for(web, default)]
    return Detection("node", "\n".join(lines) + "\n", summary)


def _go(probe: Probe) -> Detection:
    m = _GO_VERSION.search(probe.texts.get("go.mod") or "")
    image = f"golang:{m.group(1)}" if m else GO_IMAGE
    lines = [
        f"FROM {image} AS build",
        "WORKDIR /src",
        "COPY . .",
        "ENV CGO_ENABLED=0",
        f"RUN {_j('go', 'build', '-o', '/out/app', '.')}",
        f"FROM {STATIC_IMAGE}",
        "COPY --from=build /out/app /app",
        f"ENV PORT={PORT}",
        'CMD ["/app"]',
    ]
    return Detection("go", "\n".join(lines) + "\n", f"Go ({image}), a static binary on busybox")


def _static() -> Detection:
    lines = [
        f"FROM {STATIC_IMAGE} AS site",
        "COPY . /www",
        f"RUN {_j('rm', '-rf', f'/www/{GENERATED_DIR}')}",
        f"FROM {STATIC_IMAGE}",
        "COPY --from=site /www /www",
        "USER 65534:65534",
        f"ENV PORT={PORT}",
        f"CMD {_j('/bin/sh', '-c', _STATIC_SERVE)}",
    ]
    return Detection("static", "\n".join(lines) + "\n", "static site (index.html) served by busybox httpd")


def detect(probe: Probe) -> Detection:
    """The generated Dockerfile for the build context described by ``probe``."""
    names = probe.names
    if "go.mod" in names:
        return _go(probe)
    if "package.json" in names:
        return _node(probe)
    if "requirements.txt" in names or "pyproject.toml" in names:
        return _python(probe)
    if "index.html" in names:
        return _static()
    raise DetectionFailed(
        "no Dockerfile and nothing Berth can detect: add a Dockerfile, or an index.html (static site), "
        "requirements.txt or pyproject.toml (Python), package.json (Node) or go.mod (Go)"
    )
