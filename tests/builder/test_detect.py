"""Berth's detection and the Dockerfiles it generates, by exact comparison."""

from __future__ import annotations

import pytest

from berth_builder.domain.detect import DetectionFailed, Probe, detect, procfile_web


def probe(*names: str, **texts: str) -> Probe:
    texts = {k.replace("_", "."): v for k, v in texts.items()}
    return Probe(names=frozenset(names) | frozenset(texts), texts=texts)


STATIC = """\
FROM busybox:1.36 AS site
COPY . /www
RUN ["rm", "-rf", "/www/.berth"]
FROM busybox:1.36
COPY --from=site /www /www
USER 65534:65534
ENV PORT=8080
CMD ["/bin/sh", "-c", "exec httpd -f -v -p \\"$PORT\\" -h /www"]
"""


def test_static_site():
    got = detect(probe("index.html", "style.css"))
    assert (got.kind, got.dockerfile) == ("static", STATIC)


def test_python_with_requirements_and_procfile():
    got = detect(
        Probe(
            names=frozenset({"requirements.txt", "Procfile", "app.py"}),
            texts={
                "requirements.txt": "# deps\nflask==3.0\n\n",
                "Procfile": "worker: x\nweb: gunicorn app:app -b 0.0.0.0:$PORT\n",
            },
        )
    )
    assert got.kind == "python"
    assert (
        got.dockerfile
        == """\
FROM python:3.12-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8080
COPY requirements.txt ./
RUN ["python3", "-m", "pip", "install", "--no-cache-dir", "-r", "requirements.txt"]
COPY . .
CMD ["/bin/sh", "-c", "gunicorn app:app -b 0.0.0.0:$PORT"]
"""
    )


def test_python_without_dependencies_needs_no_pip():
    got = detect(Probe(names=frozenset({"requirements.txt", "app.py"}), texts={"requirements.txt": "# nothing\n"}))
    assert (
        got.dockerfile
        == """\
FROM python:3.12-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8080
COPY . .
CMD ["python3", "app.py"]
"""
    )


def test_python_pyproject_dependencies_and_django_default():
    pyproject = '[project]\nname = "x"\ndependencies = ["django>=5", "psycopg[binary]"]\n'
    got = detect(Probe(names=frozenset({"pyproject.toml", "manage.py"}), texts={"pyproject.toml": pyproject}))
    assert (
        got.dockerfile
        == """\
FROM python:3.12-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8080
RUN ["python3", "-m", "pip", "install", "--no-cache-dir", "django>=5", "psycopg[binary]"]
COPY . .
CMD ["/bin/sh", "-c", "exec python3 manage.py runserver 0.0.0.0:${PORT:-8080}"]
"""
    )


def test_python_main_py_default():
    got = detect(
        Probe(names=frozenset({"pyproject.toml", "main.py"}), texts={"pyproject.toml": "[project]\nname='x'\n"})
    )
    assert got.dockerfile.endswith('CMD ["python3", "main.py"]\n')


def test_python_without_start_command_says_what_to_add():
    with pytest.raises(DetectionFailed, match="Procfile with a 'web: <command>' line"):
        detect(Probe(names=frozenset({"requirements.txt"}), texts={"requirements.txt": ""}))


def test_node_with_start_script_and_lockfile():
    pkg = '{"name": "x", "scripts": {"start": "node server.js"}, "dependencies": {"express": "^4"}}'
    got = detect(Probe(names=frozenset({"package.json", "package-lock.json"}), texts={"package.json": pkg}))
    assert got.kind == "node"
    assert (
        got.dockerfile
        == """\
FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production PORT=8080
COPY package*.json ./
RUN ["npm", "ci", "--omit=dev"]
COPY . .
CMD ["npm", "start"]
"""
    )


def test_node_without_lockfile_or_dependencies():
    got = detect(Probe(names=frozenset({"package.json"}), texts={"package.json": '{"main": "index.js"}'}))
    assert (
        got.dockerfile
        == """\
FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production PORT=8080
COPY . .
CMD ["node", "index.js"]
"""
    )
    pkg = '{"scripts": {"start": "x"}, "dependencies": {"a": "1"}}'
    got = detect(Probe(names=frozenset({"package.json"}), texts={"package.json": pkg}))
    assert 'RUN ["npm", "install", "--omit=dev"]' in got.dockerfile


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"scripts": {"test": "x"}}', "no scripts.start"),
        ('{"main": "../../etc/passwd"}', "no scripts.start"),
        ("[1, 2]", "JSON object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_node_failures(text, why):
    with pytest.raises(DetectionFailed, match=why):
        detect(Probe(names=frozenset({"package.json"}), texts={"package.json": text}))


def test_go():
    got = detect(Probe(names=frozenset({"go.mod", "main.go"}), texts={"go.mod": "module example.com/x\n\ngo 1.21.5\n"}))
    assert got.kind == "go"
    assert (
        got.dockerfile
        == """\
FROM golang:1.21 AS build
WORKDIR /src
COPY . .
ENV CGO_ENABLED=0
RUN ["go", "build", "-o", "/out/app", "."]
FROM busybox:1.36
COPY --from=build /out/app /app
ENV PORT=8080
CMD ["/app"]
"""
    )
    assert detect(Probe(names=frozenset({"go.mod"}), texts={"go.mod": "module x\n"})).dockerfile.startswith(
        "FROM golang:1.22 AS build\n"
    )


def test_detection_order_and_nothing_detected():
    assert detect(Probe(names=frozenset({"go.mod", "package.json", "index.html"}), texts={})).kind == "go"
    pkg = '{"scripts": {"start": "x"}}'
    assert (
        detect(
            Probe(names=frozenset({"package.json", "requirements.txt", "index.html"}), texts={"package.json": pkg})
        ).kind
        == "node"
    )
    assert detect(Probe(names=frozenset({"requirements.txt", "app.py", "index.html"}), texts={})).kind == "python"
    with pytest.raises(DetectionFailed, match="no Dockerfile and nothing Berth can detect"):
        detect(Probe(names=frozenset({"README.md"}), texts={}))


def test_repository_values_cannot_inject_instructions():
    # a newline cannot reach the Dockerfile: the Procfile is read line by line, values are JSON strings
    got = detect(
        Probe(names=frozenset({"requirements.txt", "Procfile"}), texts={"Procfile": 'web: echo "a" \\\nRUN evil'})
    )
    assert got.dockerfile.splitlines()[-1] == 'CMD ["/bin/sh", "-c", "echo \\"a\\" \\\\"]'
    assert "\nRUN evil" not in got.dockerfile
    with pytest.raises(DetectionFailed, match="control characters"):
        procfile_web("web: a\x1b[2Jb")
    bad = '[project]\ndependencies = ["--index-url=http://evil/"]\n'
    with pytest.raises(DetectionFailed, match="invalid dependency"):
        detect(Probe(names=frozenset({"pyproject.toml", "app.py"}), texts={"pyproject.toml": bad}))
    with pytest.raises(DetectionFailed, match="not valid TOML"):
        detect(Probe(names=frozenset({"pyproject.toml", "app.py"}), texts={"pyproject.toml": "[project"}))


def test_procfile_web():
    assert procfile_web(None) is None
    assert procfile_web("worker: x\n") is None
    assert procfile_web("web:   python3 -m http.server $PORT  \r\n") == "python3 -m http.server $PORT"
