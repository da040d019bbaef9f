"""The outbound rule in the builder: the git server's addresses are checked before git runs, and over http(s)
git connects to exactly the checked address and follows no redirect."""

from __future__ import annotations

import asyncio
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from berth_builder.adapters.git import GitRunner
from berth_builder.domain import clone
from berth_builder.domain.source import GitRef
from berth_builder.usecases.checkout import Checkout, CloneFailed
from berth_common import values
from berth_common.outbound import OutboundPolicy
from tests.builder.git_servers import HttpGitServer
from tests.builder.support import make_repo, publish_bare

MAIN = GitRef("name", "main")


def test_http_commands_are_pinned_to_the_checked_addresses_and_follow_no_redirect() -> None:
    url = values.git_location("https://git.example.com:8443/team/app.git")
    command = clone.resolve_command(url, MAIN)
    assert command is not None
    assert clone.pinned(command, url, ("192.0.2.7", "2001:db8::7")).argv == (
        "git",
        "-c",
        "http.followRedirects=false",
        "-c",
        "http.curloptResolve=git.example.com:8443:192.0.2.7,[2001:db8::7]",
        *command.argv[1:],
    )
    plain = values.git_location("http://git.example.com/a.git")
    assert clone.pinned(command, plain, ("10.0.0.2",)).argv[4] == "http.curloptResolve=git.example.com:80:10.0.0.2"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://git.example.com/a.git", ("git.example.com", 443)),
        ("ssh://git@git.example.com:2222/a.git", ("git.example.com", 2222)),
        ("git@git.example.com:team/a.git", ("git.example.com", 22)),
        ("git://[::1]/a.git", ("::1", 9418)),
    ],
)
def test_the_target_of_a_url(url: str, target: tuple[str, int]) -> None:
    assert clone.target_of(values.git_location(url)) == target


def test_ssh_and_local_commands_are_not_rewritten() -> None:
    ssh = values.git_location("git@git.example.com:team/a.git")
    command = clone.resolve_command(ssh, MAIN)
    assert command is not None and clone.pinned(command, ssh, ("192.0.2.7",)) == command
    assert clone.target_of(values.git_location("/srv/repo", allow_local=True)) is None


def _checkout(url: values.GitLocation, policy: OutboundPolicy, runner: GitRunner) -> Checkout:
    return Checkout.starting_now(runner, url, MAIN, 30.0, lambda text: text, policy=policy)


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://127.0.0.1:9/a.git", "127.0.0.1 is a loopback address"),
        ("git@169.254.169.254:team/a.git", "169.254.169.254 is a cloud metadata address"),
        ("ssh://git@[::ffff:127.0.0.1]/a.git", "is a loopback address"),
        ("https://metadata.google.internal/a.git", "metadata.google.internal is a cloud metadata address"),
    ],
)
async def test_a_refused_git_server_fails_the_checkout_before_git_runs(url: str, rule: str) -> None:
    runner = GitRunner()
    location = values.git_location(url)
    with pytest.raises(CloneFailed) as caught:
        await _checkout(location, OutboundPolicy(), runner).resolve()
    assert caught.value.failure == "refused"
    assert caught.value.reason.startswith(f"{location.display} was not cloned: outbound rule: ")
    assert rule in caught.value.reason
    assert runner.started == 0


async def test_git_connects_to_the_checked_address_of_an_allowed_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``git.example`` resolves (for the check) to 127.0.0.1, allowed by name; git itself could not resolve
    it at all, so the clone works only because curl connects to the checked address."""
    repo = tmp_path / "repo"
    sha = make_repo(repo, {"README": "hello\n"})
    publish_bare(repo, tmp_path / "served", "app.git")
    server = HttpGitServer(tmp_path / "served", "u", "tok-1234").start()
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        assert host == "git.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    try:
        location = values.GitLocation("http", f"http://u:tok-1234@git.example:{server.port}/app.git", "app")
        allowed = OutboundPolicy().with_allowance(["git.example"])
        commit, found = await _checkout(location, allowed, GitRunner()).resolve()
        assert (commit, found) == (sha, True)
        with pytest.raises(CloneFailed) as caught:
            await _checkout(location, OutboundPolicy(), GitRunner()).resolve()
        assert caught.value.reason == (
            "app was not cloned: git.example resolves to 127.0.0.1: outbound rule: 127.0.0.1 is a loopback "
            "address; an admin can allow it (BERTH_OUTBOUND_ALLOW, or the team's outbound allowance)"
        )
    finally:
        server.stop()


async def test_git_follows_no_redirect() -> None:
    """A git server that redirects (here to the metadata address) fails the checkout; nothing follows."""
    seen: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/info/refs?service=git-upload-pack")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        location = values.git_location(f"http://127.0.0.1:{server.server_address[1]}/app.git")
        with pytest.raises(CloneFailed) as caught:
            await _checkout(location, OutboundPolicy.from_entries(["127.0.0.1"]), GitRunner()).resolve()
        assert "302" in caught.value.reason
        assert seen == ["/app.git/info/refs?service=git-upload-pack"]
    finally:
        server.shutdown()


async def test_host_keys_of_a_refused_server_are_not_read(builder_factory) -> None:
    from berth_common.catalogue import HostKeysQuery, HostKeysReply

    b = await builder_factory(outbound_allow="", outbound_allow_teams={"team-ok": ["127.0.0.9"]})
    query = HostKeysQuery(repository="git@169.254.169.254:acme/app.git", timeout_s=5)
    reply = await b.api.request("builder", "host_keys", query, HostKeysReply, timeout=30)
    assert reply.problem is not None and (reply.problem.status, reply.problem.field) == (422, "repository")
    assert reply.problem.detail.startswith("outbound rule: 169.254.169.254 is a cloud metadata address")
    allowed = HostKeysQuery(repository="git@127.0.0.9:acme/app.git", timeout_s=2, team_id="team-ok")
    reply = await b.api.request("builder", "host_keys", allowed, HostKeysReply, timeout=30)
    assert reply.problem is not None and reply.problem.status == 502  # allowed, reached, nothing answers there
