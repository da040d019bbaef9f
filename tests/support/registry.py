"""A real image registry for tests: Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1.

Each ``Registry`` serves from a temporary storage directory on a port the kernel chose, with a config file
written here; with ``users`` it requires htpasswd (bcrypt, made by ``htpasswd -B`` from apache2-utils)
basic auth. Docker treats 127.0.0.0/8 registries as insecure-allowed, so the engine pulls over plain HTTP.
``push`` makes an image of its own from a local one (a label added), pushes it through the Docker Engine
API and untags it locally.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiodocker
from aiodocker.exceptions import DockerError, DockerStreamError

BINARY = "docker-registry"


def available() -> str | None:
    """Why a registry cannot run here, or None."""
    if shutil.which(BINARY) is None:
        return "docker-registry is not installed (deploy/install.sh --test)"
    return None


def _free_port(bind: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((bind, 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    root: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    bind: str = "127.0.0.1"  # or a test network's own address (a namespace server's engine pulls from it)
    storage: Path | None = None  # another registry's storage: the same images served at a second address

    @property
    def host(self) -> str:
        return f"{self.bind}:{self.port}"

    def start(self, timeout: float = 20.0) -> Registry:
        self.root.mkdir(parents=True, exist_ok=True)
        storage = self.storage or self.root / "storage"
        storage.mkdir(exist_ok=True)
        auth = ""
        if self.users:
            htpasswd = self.root / "htpasswd"
            lines = []
            for user, password in self.users.items():
                out = subprocess.run(
                    ["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True
                ).stdout
                lines.append(out.strip())
            htpasswd.write_text("\n".join(lines) + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: berth-test\n    path: {htpasswd}\n"
        for _ in range(5):
            self.port = _free_port(self.bind)
            config = self.root / "config.yml"
            config.write_text(
                "version: 0.1\n"
                "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: {self.bind}:{self.port}\n  secret: {secrets.token_hex(16)}\n" + auth
            )
            log = open(self.root / "registry.log", "ab")
            self.proc = subprocess.Popen([BINARY, "serve", str(config)], stdout=log, stderr=log)
            log.close()
            if self._wait(timeout):
                return self
            self.stop()
        raise RuntimeError(f"docker-registry did not start: {(self.root / 'registry.log').read_text()[-2000:]}")

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return True
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # up, and asking for credentials
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def manifest_digest(self, repository: str, tag: str) -> str:
        """The digest the registry serves for ``repository:tag`` (its Docker-Content-Digest)."""
        req = urllib.request.Request(
            f"http://{self.host}/v2/{repository}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        if self.users:
            user, password = next(iter(self.users.items()))
            req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        with urllib.request.urlopen(req, timeout=5) as r:
            return str(r.headers["Docker-Content-Digest"])


async def push(source: str, registry: Registry, repository: str, tag: str, *, mark: str = "") -> str:
    """Tag the local image ``source`` as ``<registry>/<repository>:<tag>``, push it through the Engine API
    (with the registry's first user's credentials, if it has users), then untag it locally: the pushed
    image is then only in the registry; another ``mark`` makes another image. Returns the reference pushed."""
    ref = f"{registry.host}/{repository}"
    auth = None
    if registry.users:
        user, password = next(iter(registry.users.items()))
        auth = {"username": user, "password": password, "serveraddress": registry.host}
    docker = aiodocker.Docker()
    try:
        # an image of its own (the source plus a label): the digests the push records stay on it alone
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            dockerfile = f"FROM {source}\nLABEL berth.test.pushed={repository}:{tag}{mark}\n".encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
        for attempt in (1, 2):  # the engine is shared: another test's removal can take an image the build used
            context.seek(0)
            try:
                await docker.images.build(
                    fileobj=context, encoding="identity", tag=f"{ref}:{tag}", pull=False, rm=True, nocache=True
                )
                break
            except DockerStreamError as exc:
                if attempt == 2 or "unable to find image" not in str(exc):
                    raise
        messages = await docker.images.push(ref, tag=tag, auth=auth)
        errors = [m for m in messages if "error" in m]
        if errors:
            raise RuntimeError(f"push of {ref}:{tag} failed: {json.dumps(errors)[:1000]}")
        await untag(f"{ref}:{tag}")
    finally:
        await docker.close()
    return f"{ref}:{tag}"


def pushing_and_served(root: Path, gateway: str, started: list[Registry]) -> tuple[Registry, Registry]:
    """The registry Berth pushes to (on loopback) and the same storage served on a test network's ``gateway``
    (where its test servers pull from); each appended to ``started`` as it starts, for the caller to stop."""
    started.append(Registry(root / "pushing").start())
    started.append(Registry(root / "served", bind=gateway, storage=root / "pushing" / "storage").start())
    return started[-2], started[-1]


def remove_local(reference: str) -> None:
    """``untag`` for a fixture's teardown (outside the event loop)."""
    subprocess.run(["docker", "rmi", "--no-prune", reference], capture_output=True, check=False)


async def untag(reference: str) -> None:
    """Remove a local tag (the image stays while another tag names it); absent is fine."""
    docker = aiodocker.Docker()
    try:
        await docker.images.delete(reference, force=False, noprune=True)
    except DockerError as exc:
        if exc.status != 404:
            raise
    finally:
        await docker.close()
