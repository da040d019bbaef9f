"""Private git servers for the builder's tests: an OpenSSH server on a loopback address of its own (port
22, so scp-like ``root@127.a.b.c:/path`` URLs reach it) whose keys may only run ``git-shell``, and a git
``http-backend`` behind a small HTTP server that demands Basic auth and records every request it saw."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.procs import wait_port

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def _keygen(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True, timeout=30)


@dataclass
class SshGitServer:
    """sshd on ``address``:22 serving the repositories under ``root`` to the keys it authorizes."""

    root: Path
    address: str = field(
        default_factory=lambda: f"127.{random.randint(20, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    )
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host_key_path(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    def host_key_line(self) -> str:
        """``ssh-ed25519 AAAA...`` of the server's current host key."""
        return " ".join(Path(f"{self.host_key_path}.pub").read_text().split()[:2])

    def start(self) -> SshGitServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.host_key_path.exists():
            _keygen(self.host_key_path)
        (self.root / "authorized_keys").touch()
        config = self.root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}",
                    "Port 22",
                    f"HostKey {self.host_key_path}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    f"PidFile {self.root / 'sshd.pid'}",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(22, host=self.address)
        return self

    def authorize(self, public_key: str) -> None:
        """Let ``public_key`` run git's upload-pack and nothing else (git-shell, no forwarding, no pty)."""
        forced = 'restrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\""'
        with (self.root / "authorized_keys").open("a") as f:
            f.write(f"{forced} {public_key.strip()}\n")

    def replace_host_key(self) -> None:
        """The server is reinstalled: a new host key, sshd restarted."""
        self.stop()
        _keygen(self.host_key_path)
        self.start()

    def scp_url(self, path: Path) -> str:
        return f"root@{self.address}:{path}"

    def ssh_url(self, path: Path) -> str:
        return f"ssh://root@{self.address}:22{path}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


@dataclass
class HttpGitServer:
    """git's smart HTTP (``git http-backend`` as CGI) for the repositories under ``root``, each request
    answered 401 unless it carries ``Authorization: Basic base64(username:token)``. ``seen``: every
    request line and header it received (to check where a token travelled)."""

    root: Path
    username: str
    token: str
    seen: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> HttpGitServer:
        owner = self
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.token}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def _serve(self) -> None:
                owner.seen.append(self.requestline)
                owner.seen.extend(f"{k}: {v}" for k, v in self.headers.items())
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {
                    "PATH": "/usr/bin:/bin",
                    "GIT_PROJECT_ROOT": str(owner.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": owner.username,
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                }
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                out = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True, timeout=60).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status = 200
                headers: list[tuple[str, str]] = []
                for line in head.decode(errors="replace").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _serve
            do_POST = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
