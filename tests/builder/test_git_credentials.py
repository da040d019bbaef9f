"""A private repository's credentials as pure data: the ssh command from fixed words and a checked
directory, the token as one header for the repository's origin, credentials that do not fit the URL
refused, and ssh-keyscan's output read into pinned host keys."""

from __future__ import annotations

import base64

import pytest

from berth_builder.domain import git_credentials as creds
from berth_builder.domain.clone import classify_git_failure, failure_reason
from berth_builder.domain.source import InvalidInput, validate_git_url
from berth_common.catalogue.git_auth import GitAuth, HostKey, known_hosts_name, ssh_endpoint

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
PINNED = [HostKey(host="git.example.com", key_type="ssh-ed25519", key=KEY)]


def test_a_deploy_key_gives_the_key_file_the_pinned_hosts_and_a_strict_ssh_command():
    auth = GitAuth(
        kind="ssh",
        private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----",
        host_keys=PINNED,
    )  # type: ignore[arg-type]
    plan = creds.plan(auth, validate_git_url("git@git.example.com:acme/app.git"), "/var/lib/berth/w/.auth/git-auth-x1")
    assert plan.files == {
        "id_deploy": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
        "known_hosts": f"git.example.com ssh-ed25519 {KEY}\n",
    }
    d = "/var/lib/berth/w/.auth/git-auth-x1"
    assert plan.env == {
        "GIT_SSH_COMMAND": "ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=30 -o IdentitiesOnly=yes "
        f"-o IdentityAgent=none -o IdentityFile={d}/id_deploy -o UserKnownHostsFile={d}/known_hosts "
        "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o UpdateHostKeys=no "
        "-o PasswordAuthentication=no -o KbdInteractiveAuthentication=no"
    }
    assert plan.drop == ("SSH_AUTH_SOCK",)
    assert "PRIVATE KEY" not in repr(plan)


@pytest.mark.parametrize("directory", ["relative/dir", "/tmp/a b", "/tmp/$(x)", "/tmp/a;b", "/tmp/../etc", "/tmp/'q'"])
def test_the_ssh_command_refuses_a_directory_a_shell_would_read(directory):
    with pytest.raises(ValueError, match="characters a shell would interpret"):
        creds.ssh_command(directory)


def test_a_token_is_one_header_for_the_origin_only():
    auth = GitAuth(kind="https", username="oauth2", token="glpat-123")  # type: ignore[arg-type]
    plan = creds.plan(auth, validate_git_url("https://GitLab.example.com:8443/acme/app.git"), "/unused")
    basic = base64.b64encode(b"oauth2:glpat-123").decode()
    assert plan.files == {} and plan.drop == ()
    assert plan.env == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.https://gitlab.example.com:8443/.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }
    assert set(plan.secrets) == {"glpat-123", basic}
    bad = GitAuth(kind="https", username="u", token="a b\r\nX-Evil: 1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="printable ASCII"):
        creds.plan(bad, validate_git_url("https://h.example/x.git"), "/unused")


def test_credentials_must_fit_the_url():
    ssh = GitAuth(kind="ssh", private_key="k", host_keys=PINNED)  # type: ignore[arg-type]
    https = GitAuth(kind="https", username="u", token="t")  # type: ignore[arg-type]
    creds.check(ssh, validate_git_url("ssh://git@h.example:2222/x.git"))
    creds.check(https, validate_git_url("http://h.example/x.git"))
    creds.check(None, validate_git_url("git://h.example/x.git"))
    with pytest.raises(InvalidInput, match="deploy key is for ssh"):
        creds.check(ssh, validate_git_url("https://h.example/x.git"))
    with pytest.raises(InvalidInput, match="token is for https"):
        creds.check(https, validate_git_url("git@h.example:x.git"))
    with pytest.raises(ValueError, match="at least one pinned host key"):
        GitAuth(kind="ssh", private_key="k")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HostKey(host="h.example\n@cert-authority *", key_type="ssh-ed25519", key=KEY)


def test_ssh_endpoints_and_keyscan_output():
    assert ssh_endpoint("git@github.com:acme/app.git") == ("github.com", 22)
    assert ssh_endpoint("ssh://git@git.example.com:2222/acme/app.git") == ("git.example.com", 2222)
    assert ssh_endpoint("ssh://git@[::1]/x.git") == ("::1", 22)
    assert ssh_endpoint("https://github.com/acme/app.git") is None
    assert known_hosts_name("git.example.com", 2222) == "[git.example.com]:2222"
    assert creds.keyscan_argv("git.example.com", 2222, 10) == (
        "ssh-keyscan",
        "-T",
        "10",
        "-p",
        "2222",
        "--",
        "git.example.com",
    )
    output = f"# git.example.com:2222 SSH-2.0-OpenSSH_9.2\n[git.example.com]:2222 ssh-ed25519 {KEY}\ngarbage\n"
    assert creds.parse_keyscan(output, "[git.example.com]:2222") == [
        HostKey(host="[git.example.com]:2222", key_type="ssh-ed25519", key=KEY)
    ]


def test_a_host_key_other_than_the_pinned_one_is_its_own_failure():
    changed = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\n"
        "Host key verification failed.\nfatal: Could not read from remote repository."
    )
    unknown = (
        "No ED25519 host key is known for git.example.com and you have requested strict checking.\n"
        "Host key verification failed."
    )
    assert classify_git_failure(changed) == classify_git_failure(unknown) == "host_key"
    assert classify_git_failure("Host key verification failed.") == "auth"  # no pin involved: as before
    reason = failure_reason("host_key", display_url="git@h:x.git", ref="main", timeout_s=1, stderr=changed)
    assert reason.startswith("the SSH server of git@h:x.git presented a host key that is not the one pinned")
