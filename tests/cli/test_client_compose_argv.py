"""The exact bodies ``berth apps create/update`` send for compose applications (against a local server
that records them, as the api's contract takes them): a compose file inline or at a path of the ``--git``
repository, ``--host SERVICE:PORT[=HOST][/PATH]``, the files mounted as ./files/<path> (an update keeps the
stored ones by path), ``templates deploy``'s variables; and the command line's own usage errors (exit 2,
naming the option), which send nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.cli.conftest import local_env, local_server

TOKEN = "brt_local-test-token"
APP, ENV, PROJECT = "a" * 32, "e" * 32, "f" * 32
STORED = {
    "id": APP,
    "name": "stack",
    "services": [{"name": "web", "kind": "web"}],
    "compose": {"inline": "services: {}\n", "hosts": [], "files": [{"path": "nginx.conf"}, {"path": "init.sql"}]},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: object) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def _record(self) -> Any:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.sent.append((self.command, self.path, body))  # type: ignore[attr-defined]
        return body

    def do_GET(self) -> None:
        if self.path == "/v1/projects":
            return self._json(
                200, [{"id": PROJECT, "name": "acme", "environments": [{"id": ENV, "name": "production"}]}]
            )
        if self.path == f"/v1/applications/{APP}":
            return self._json(200, STORED)
        self._json(404, {"title": "Not found", "status": 404})

    def do_POST(self) -> None:
        body = self._record()
        self._json(201, {"id": APP, "name": body.get("name", "stack"), "services": STORED["services"]})

    def do_PATCH(self) -> None:
        self._record()
        self._json(200, STORED)


@pytest.fixture
def local_api() -> Iterator[ThreadingHTTPServer]:
    with local_server(Handler, sent=[]) as server:
        yield server


async def test_create_sends_the_compose_file_hosts_and_files(berth, local_api, tmp_path):
    env = local_env(local_api, TOKEN)
    created = f"/v1/environments/{ENV}/applications"
    r = await berth(
        "apps", "create", "stack", "-p", "acme", "--git", "https://git.example.com/acme/stack.git",
        "--branch", "main", "--compose-path", "deploy/compose.yml",
        "--host", "web:3000", "--host", "api:8080=api.example.com/v1", "--host", "web:3000=www.example.com",
        "--host", "docs:80/docs", "--env", "MODE=prod", "--json",
        env=env,
    )  # fmt: skip
    assert r.code == 0, r
    assert local_api.sent.pop() == (  # type: ignore[attr-defined]
        "POST",
        created,
        {
            "name": "stack",
            "compose": {"path": "deploy/compose.yml"},
            "env": [{"name": "MODE", "value": "prod"}],
            "hosts": [
                {"service": "web", "port": 3000},
                {"service": "api", "port": 8080, "host": "api.example.com", "path": "/v1"},
                {"service": "web", "port": 3000, "host": "www.example.com"},
                {"service": "docs", "port": 80, "path": "/docs"},
            ],
            "source": {"kind": "git", "repository": "https://git.example.com/acme/stack.git", "branch": "main"},
        },
    )  # fmt: skip

    stack, conf = tmp_path / "compose.yml", tmp_path / "default.conf"
    stack.write_text("services:\n  web:\n    image: nginx:1.27\n")
    conf.write_text("server { listen 80; }\n")
    conf.chmod(0o640)
    r = await berth(
        "apps", "create", "site", "-p", "acme", "--compose", str(stack),
        "--with-file", f"nginx/default.conf={conf}", env=env,
    )  # fmt: skip
    assert (r.code, r.out) == (
        0,
        f"Created application site ({APP}); deploy it with: berth deploy {APP}\nServices: web (web)\n",
    )
    assert local_api.sent.pop() == (  # type: ignore[attr-defined]
        "POST",
        created,
        {
            "name": "site",
            "compose": {
                "inline": "services:\n  web:\n    image: nginx:1.27\n",
                "files": [{"path": "nginx/default.conf", "content": "server { listen 80; }\n", "mode": 0o640}],
            },
            "env": [],
        },
    )
    r = await berth("apps", "create", "site", "-p", "acme", "--compose", "-", env=env, input="services: {}\n")
    assert r.code == 0, r
    assert local_api.sent.pop()[2]["compose"] == {"inline": "services: {}\n"}  # type: ignore[attr-defined]


async def test_update_keeps_the_stored_files_and_replaces_the_hosts(berth, local_api, tmp_path):
    env = local_env(local_api, TOKEN)
    stack, sql = tmp_path / "compose.yml", tmp_path / "init.sql"
    stack.write_text("services:\n  db:\n    image: postgres:16\n")
    sql.write_text("CREATE TABLE t (id int);\n")
    sql.chmod(0o600)
    r = await berth("apps", "update", APP, "--compose", str(stack), "--with-file", f"init.sql={sql}", env=env)
    assert r.code == 0, r
    assert local_api.sent.pop() == (  # type: ignore[attr-defined]
        "PATCH",
        f"/v1/applications/{APP}",
        {
            "compose": {
                "inline": "services:\n  db:\n    image: postgres:16\n",
                "files": [
                    {"path": "nginx.conf"},
                    {"path": "init.sql", "content": "CREATE TABLE t (id int);\n", "mode": 0o600},
                ],
            }
        },
    )
    r = await berth("apps", "update", APP, "--compose-path", "compose.yml", "--host", "db:5432=db.example.com", env=env)
    assert r.code == 0, r
    assert local_api.sent.pop()[2] == {  # type: ignore[attr-defined]
        "compose": {"path": "compose.yml", "files": [{"path": "nginx.conf"}, {"path": "init.sql"}]},
        "hosts": [{"service": "db", "port": 5432, "host": "db.example.com"}],
    }
    r = await berth("apps", "update", APP, "--host", "db:5432", env=env)
    assert local_api.sent.pop()[2] == {"hosts": [{"service": "db", "port": 5432}]}  # type: ignore[attr-defined]


async def test_profiles_are_sent_and_kept_by_an_update(berth, local_api, tmp_path, monkeypatch):
    env = local_env(local_api, TOKEN)
    stack = tmp_path / "compose.yml"
    stack.write_text("services:\n  web:\n    image: nginx:1.27\n")
    r = await berth(
        "apps", "create", "site", "-p", "acme", "--compose", str(stack), "--profile", "debug", "--profile", "ops",
        env=env,
    )  # fmt: skip
    assert r.code == 0, r
    assert local_api.sent.pop()[2]["compose"] == {  # type: ignore[attr-defined]
        "inline": "services:\n  web:\n    image: nginx:1.27\n",
        "profiles": ["debug", "ops"],
    }
    # --profile alone: the stored file again (its files kept by path), read with those profiles
    r = await berth("apps", "update", APP, "--profile", "tools", env=env)
    assert r.code == 0, r
    assert local_api.sent.pop()[2] == {  # type: ignore[attr-defined]
        "compose": {
            "inline": "services: {}\n",
            "profiles": ["tools"],
            "files": [{"path": "nginx.conf"}, {"path": "init.sql"}],
        }
    }
    # a new file keeps the stored profiles unless --profile is given
    monkeypatch.setitem(STORED, "compose", {**STORED["compose"], "files": [], "profiles": ["debug"]})
    r = await berth("apps", "update", APP, "--compose", str(stack), env=env)
    assert r.code == 0, r
    assert local_api.sent.pop()[2] == {  # type: ignore[attr-defined]
        "compose": {"inline": "services:\n  web:\n    image: nginx:1.27\n", "profiles": ["debug"]}
    }
    r = await berth("apps", "create", "x", "-p", "acme", "--image", "nginx:1.27", "--profile", "debug", env=env)
    assert r.code == 2 and "--profile" in r.err and not local_api.sent  # type: ignore[attr-defined]


async def test_templates_deploy_sends_the_variables(berth, local_api, tmp_path):
    env = local_env(local_api, TOKEN)
    r = await berth(
        "templates", "deploy", "plausible", "-p", "acme", "--name", "stats", "--domain", "stats.example.com",
        "--var", "admin_email=ops@example.com", "--var", "tag=v2.1", "--json", env=env,
    )  # fmt: skip
    assert r.code == 0, r
    assert local_api.sent.pop() == (  # type: ignore[attr-defined]
        "POST",
        "/v1/templates/plausible/deploy",
        {
            "variables": {"admin_email": "ops@example.com", "tag": "v2.1"},
            "name": "stats",
            "domain": "stats.example.com",
            "environment_id": ENV,
        },
    )
    doc = tmp_path / "tpl.yml"
    doc.write_text("name: Hello\nslug: hello\ncompose: |\n  services: {}\n")
    r = await berth("templates", "deploy", "--file", str(doc), "-p", "acme", "--json", env=env)
    assert r.code == 0, r
    assert local_api.sent.pop() == (  # type: ignore[attr-defined]
        "POST",
        "/v1/templates/deploy",
        {"variables": {}, "document": doc.read_text(), "environment_id": ENV},
    )


async def test_create_asks_a_web_service_to_buffer_its_requests(berth, local_api):
    env = local_env(local_api, TOKEN)
    r = await berth(
        "apps", "create", "shop", "-p", "acme", "--image", "nginx:1.27", "--port", "80", "--buffer-requests", "25",
        "--json", env=env,
    )  # fmt: skip
    assert r.code == 0, r
    _, _, body = local_api.sent.pop()  # type: ignore[attr-defined]
    assert body["services"] == [
        {
            "kind": "web",
            "name": "web",
            "replicas": 1,
            "port": 80,
            "health_path": "/",
            "domains": [],
            "buffer_requests": {"max_body_mb": 25},
        }
    ]


USAGE = [
    (["apps", "create", "s", "-p", "acme", "--compose-path", "c.yml"], "--compose-path", "give --git"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--compose-path", "c.yml", "--git", "https://g/x.git"],
     "--compose", "give --compose or --compose-path, not both"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--image", "nginx:1.27"], "--image", "a compose file names"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--port", "80"], "--port", "a compose file names"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--git", "https://g/x.git", "--dockerfile", "D"],
     "--dockerfile", "a compose file names"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--domain", "x.example.com"], "--domain", "(hosts: --host)"),
    (["apps", "create", "s", "-p", "acme", "--image", "nginx:1.27", "--host", "web:80"], "--host", "compose application"),
    (["apps", "create", "s", "-p", "acme", "--image", "nginx:1.27", "--with-file", "a=b"], "--with-file", "go with"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--host", "web=x.example.com"], "--host", "is not SERVICE:PORT"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--host", "web:http"], "--host", "is not SERVICE:PORT"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--host", "web:80="], "--host", "is not SERVICE:PORT"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--with-file", "nginx.conf"], "--with-file", "not DEST=SRC"),
    (["apps", "create", "s", "-p", "acme", "--compose", "/nonexistent/compose.yml"], "--compose", "cannot read"),
    (["apps", "create", "s", "-p", "acme", "--compose", "C", "--buffer-requests", "5"], "--buffer-requests",
     "a compose file names"),
    (["apps", "create", "s", "-p", "acme", "--image", "busybox", "--worker", "--buffer-requests", "5"],
     "--buffer-requests", "a worker has no route"),
    (["apps", "create", "s", "-p", "acme", "--image", "busybox", "--buffer-requests", "0"], "--buffer-requests", "0"),
    (["templates", "deploy", "-p", "acme"], "SLUG/--file", "give a template's SLUG or --file"),
    (["templates", "deploy", "plausible", "-p", "acme", "--var", "x"], "--var", "is not NAME=VALUE"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "option", "words"), USAGE)
async def test_usage_errors_name_the_option_and_send_nothing(berth, local_api, tmp_path, argv, option, words):
    stack = tmp_path / "c.yml"
    stack.write_text("services: {}\n")
    argv = [str(stack) if a == "C" else a for a in argv]
    r = await berth(*argv, env=local_env(local_api, TOKEN))
    assert r.code == 2, r
    flat = " ".join(r.err.replace("│", " ").split())
    assert option in flat and words in flat, r.err
    assert local_api.sent == []  # type: ignore[attr-defined]
