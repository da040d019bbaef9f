"""Hostile strings, and valid bodies that carry every string field of the api's request schemas.

A payload goes into one string field of an otherwise valid body at a time, so the answer can only be
about that field. ``BASES`` has hand-made valid bodies (every optional field set, each union alternative
in its own body) for the request schemas whose rules go beyond their JSON schema (git grammars, one of
branch/commit, unique hosts); any other schema gets the minimal body generated from the OpenAPI, and
its optional string fields are added to it one by one (``augment``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from berth_common import ssh_keys
from tests.api.tls_certs import upload_fields
from tests.security.spec import Spec, get, leaves, put, unique

PWN = "/tmp/pwn"
PATH_IDS = "__path_ids__"  # in a base body: path parameters of its own (not sent)
SWEEP_TEMPLATE = """name: Sweep
slug: sweep
description: A template document of the sweep.
tags: [test]
variables:
  host: {kind: domain, service: web, port: 80}
compose: |
  services:
    web:
      image: nginx:1.27
      ports: ["80"]
"""


def payloads(canary: str) -> dict[str, str]:
    """name -> hostile value; ``canary`` is an absolute path outside the data dir that must stay unread."""
    return {
        "shell-semicolon": f"x; touch {PWN}",
        "shell-subst": f"$(touch {PWN})",
        "shell-backtick": f"`touch {PWN}`",
        "shell-pipe-and": f"x | touch {PWN} && touch {PWN} &",
        "env-expansion": "${HOME}$IFS",
        "git-upload-pack": f"--upload-pack=touch {PWN}",
        "ssh-proxycommand": f"-oProxyCommand=touch {PWN}",
        "git-ext": "ext::sh -c touch%20/tmp/pwn",
        "file-url": "file:///etc/passwd",
        "traversal": "../../../../etc/passwd",
        "traversal-canary": "../../../../../../../.." + canary,
        "absolute-canary": canary,
        "newline": "x\ny: 1",
        "crlf": "x\r\nSet-Cookie: pwn=1",
        "nul": "x\x00y",
        "long": "a" * 10_000,
        "cyrillic-a": "\u0430pp",  # Cyrillic small a, then "pp": looks like "app"
        "fullwidth-ext": "\uff45\uff58\uff54::sh -c touch /tmp/pwn",  # fullwidth "ext::"
    }


BIND_ROOT = "/srv/berth-shared"  # the live api's BERTH_BIND_MOUNT_ALLOW (conftest)


def _app(source: dict[str, Any]) -> dict[str, Any]:
    name = unique("a")
    return {
        "source": source,
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "replicas": 1,
                "health_path": "/healthz",
                "command": ["python", "-m", "web"],
                "domains": [f"{name}.example.com"],
                "servers": ["local"],
            },
            {
                "kind": "worker",
                "name": "jobs",
                "command": ["python", "-m", "jobs"],
                "health_command": ["true"],
                "volumes": [{"name": "data", "path": "/data", "size_mb": 64}],
                "binds": [{"host_path": f"{BIND_ROOT}/media", "path": "/media"}],
            },
        ],
        "env": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "API_KEY", "value": "s3cret", "secret": True}],
        "restart_policy": "always",
        "tls": {"acme": True, "redirect": "always", "hsts_max_age_s": 300},
        "pre_deploy": {"command": ["python", "manage.py", "migrate"], "service": "jobs", "timeout_s": 600},
    }


IMAGE = {"kind": "image", "image": "registry.example.com:5000/acme/shop:1.0"}


def _git(**ref: str) -> dict[str, Any]:
    return {
        "kind": "git",
        "repository": "https://github.com/acme/shop.git",
        **ref,
        "subdirectory": "app",
        "dockerfile": "docker/Dockerfile",
        "build_args": [{"name": "NODE_ENV", "value": "production"}],
    }


def _sources() -> list[dict[str, Any]]:
    return [
        IMAGE,
        _git(branch="main"),
        _git(commit="0123456789abcdef0123456789abcdef01234567"),
        {**_git(branch="main"), "build_server": "local"},
    ]


def _given_access() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """A private repository's credential given on create: a token (https), a deploy key with the server's
    host key given (ssh: no first contact, so no builder is asked)."""
    ssh = {**_git(branch="main"), "repository": "ssh://git@github.com/acme/shop.git"}
    host_key = " ".join(ssh_keys.generate_key_pair()[1].split()[:2])
    return [
        (_git(branch="main"), {"token": {"username": "x-access-token", "token": "ghp_t0ken"}}),
        (ssh, {"deploy_key": {"private_key": _ssh_key(), "host_keys": [host_key]}}),
    ]


def _composes() -> list[dict[str, Any]]:
    """Compose applications: an inline file with a host for its web service (under a path), a file it mounts,
    a profile and the service's placement, and a file of the repository."""
    inline = (
        "services:\n  web:\n    image: nginx:1.27\n    command: [nginx, -g, daemon off;]\n"
        "    volumes: ['./files/site.conf:/etc/nginx/conf.d/site.conf']\n"
    )
    host = {
        "service": "web",
        "port": 80,
        "host": f"{unique('c')}.example.com",
        "path": "/app",
        "buffer_requests": {"max_body_mb": 10},
    }
    files = [{"path": "site.conf", "content": "server { listen 80; }\n"}]
    return [
        {
            "compose": {"inline": inline, "files": files, "profiles": ["debug"]},
            "hosts": [host],
            "placement": [{"service": "web", "servers": ["local"]}],
        },
        {"compose": {"path": "deploy/compose.yml"}, "source": _git(branch="main")},
    ]


def _channels() -> list[dict[str, Any]]:
    hook = "http://127.0.0.1:9/hook"  # loopback; nothing is sent while no event is subscribed
    targets = [
        {"kind": "slack", "webhook_url": hook},
        {"kind": "discord", "webhook_url": "http://127.0.0.1:9/api/webhooks/123/abc", "username": "berth"},
        {
            "kind": "email",
            "host": "127.0.0.1",
            "port": 2525,
            "security": "plain",
            "username": "berth",
            "password": "pw",
            "from_addr": "berth@example.com",
            "to_addrs": ["ops@example.com"],
        },
        {"kind": "telegram", "bot_token": "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345678", "chat_id": "42"},
        {"kind": "webhook", "url": hook, "signing_secret": "x" * 32},
    ]
    return [{"name": unique("c"), "target": t, "enabled": True} for t in targets]


@dataclass(frozen=True)
class Later:
    """A fresh resource a base body names, made only if that body is the one sent (``Context.lazy``): of an
    operation's several bases, one job sends one."""

    make: Callable[[], Any]


def materialize(body: Any) -> Any:
    """``body`` with each ``Later`` in it made."""
    if isinstance(body, Later):
        return body.make()
    if isinstance(body, dict):
        return {k: materialize(v) for k, v in body.items()}
    if isinstance(body, list):
        return [materialize(v) for v in body]
    return body


@dataclass
class Context:
    """What a base body may need from the api: an admin's client (for single-use invitation codes)."""

    client: httpx.Client
    admin: dict[str, str]
    ids: dict[str, str]  # real ids of the team's resources (tests.security.spec.Ids)

    channels: dict[str, str] = field(default_factory=dict)  # kind -> id
    destinations: dict[str, str] = field(default_factory=dict)  # kind -> id
    compose: list[str] = field(default_factory=list)  # the compose application's id, once made
    hooked: list[str] = field(default_factory=list)  # an application with a webhook, once made
    keyed: list[str] = field(default_factory=list)  # an application of an ssh URL with a deploy key, once made
    teams: list[str] = field(default_factory=list)  # a team the admin made (and is the only admin of), once made
    lazy: bool = False  # fresh resources (a job, a server, a database, an invitation) as ``Later``s

    def _fresh(self, make: Callable[[], Any]) -> Any:
        return Later(make) if self.lazy else make()

    def channel_of(self, kind: str) -> str:
        """A channel of this kind (a channel's kind cannot change, so each kind's update needs its own)."""
        if kind not in self.channels:
            body = next(c for c in _channels() if c["target"]["kind"] == kind)
            r = self.client.post("/v1/notification-channels", headers=self.admin, json=body)
            assert r.status_code == 201, r.text
            self.channels[kind] = r.json()["id"]
        return self.channels[kind]

    def compose_app(self) -> str:
        """A compose application of the team, made once (updates of compose fields leave the shared one be)."""
        if not self.compose:
            body = {"name": unique("c"), **_composes()[0]}
            url = f"/v1/environments/{self.ids['environment_id']}/applications"
            r = self.client.post(url, headers=self.admin, json=body)
            assert r.status_code == 201, r.text
            self.compose.append(str(r.json()["id"]))
        return self.compose[0]

    def own_team(self) -> str:
        """A team the admin made (made once): a token is minted for it; leaving it is the last admin's 409."""
        if not self.teams:
            r = self.client.post("/v1/teams", headers=self.admin, json={"name": unique("t")})
            assert r.status_code == 201, r.text
            self.teams.append(str(r.json()["id"]))
        return self.teams[0]

    def webhook_app(self) -> str:
        """A git application that has a webhook (made once): creating another is the control's 409, and a
        body refused by validation answers 422 before that."""
        if not self.hooked:
            body = {"name": unique("h"), **_app(_sources()[-1])}
            url = f"/v1/environments/{self.ids['environment_id']}/applications"
            r = self.client.post(url, headers=self.admin, json=body)
            assert r.status_code == 201, r.text
            app_id = str(r.json()["id"])
            r = self.client.post(f"/v1/applications/{app_id}/webhook", headers=self.admin, json={})
            assert r.status_code == 201, r.text
            self.hooked.append(app_id)
        return self.hooked[0]

    def keyed_app(self) -> str:
        """A git application of an ssh URL that has a deploy key (made once): host keys are pinned for it."""
        if not self.keyed:
            source = {**_git(branch="main"), "repository": "git@github.com:acme/shop.git"}
            body = {"name": unique("k"), **_app(source)}
            url = f"/v1/environments/{self.ids['environment_id']}/applications"
            r = self.client.post(url, headers=self.admin, json=body)
            assert r.status_code == 201, r.text
            app_id = str(r.json()["id"])
            r = self.client.post(f"/v1/applications/{app_id}/deploy-key", headers=self.admin)
            assert r.status_code == 201, r.text
            self.keyed.append(app_id)
        return self.keyed[0]

    def job(self) -> dict[str, str]:
        """A new cron job of the sweep's application, as the path ids of its update (the job the sweep's own
        create made may be gone, or under an application made later)."""

        def make() -> dict[str, str]:
            app_id = self.ids["application_id"]
            body = {"name": unique("j"), "cron": "0 3 * * *", "command": ["true"]}
            r = self.client.post(f"/v1/applications/{app_id}/jobs", headers=self.admin, json=body)
            assert r.status_code == 201, r.text
            return {"application_id": app_id, "job_id": str(r.json()["job_id"])}

        return self._fresh(make)  # type: ignore[no-any-return]

    def server(self) -> str:
        """A new server of the team (a Swarm names servers; each is in one Swarm at most)."""

        def make() -> str:
            r = self.client.post("/v1/servers", headers=self.admin, json={"name": unique("s"), "host": "192.0.2.20"})
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        return self._fresh(make)  # type: ignore[no-any-return]

    def database(self, engine: str = "redis") -> str:
        """A new database of the team (an application links one; a drill's check fits its engine)."""

        def make() -> str:
            body = {"name": unique("d"), "engine": engine, "version": "15" if engine == "postgresql" else "7"}
            r = self.client.post("/v1/databases", headers=self.admin, json=body)
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        return self._fresh(make)  # type: ignore[no-any-return]

    def destination(self, kind: str = "directory") -> str:
        """A backup destination of the team of this kind (made once: a destination's kind cannot change)."""
        if kind not in self.destinations:
            body = next(d for d in _destinations() if d["kind"] == kind)
            r = self.client.post("/v1/backup-destinations", headers=self.admin, json=body)
            assert r.status_code == 201, r.text
            self.destinations[kind] = r.json()["id"]
        return self.destinations[kind]

    def backup(self) -> str:
        """A backup of the team's database (made once; without a scheduler it stays requested: a restore of
        it is refused 409, after its body was validated)."""
        if "backup" not in self.destinations:
            path = f"/v1/databases/{self.ids['database_id']}/backups"
            r = self.client.post(path, headers=self.admin, json={"destinations": [self.destination()]})
            assert r.status_code == 202, r.text
            self.destinations["backup"] = r.json()["id"]
        return self.destinations["backup"]

    def volume_backup(self) -> str:
        """A backup of the volume ``data`` of the sweep's application (made once; without a scheduler it stays
        requested: a restore of it is refused 409, after its body was validated)."""
        if "volume_backup" not in self.destinations:
            path = f"/v1/applications/{self.ids['application_id']}/volumes/data/backups"
            body = {"destinations": [self.destination()], "server_id": "local"}
            r = self.client.post(path, headers=self.admin, json=body)
            assert r.status_code == 202, r.text
            self.destinations["volume_backup"] = r.json()["id"]
        return self.destinations["volume_backup"]

    def invitation_code(self) -> str:
        def make() -> str:
            r = self.client.post("/v1/invitations", headers=self.admin, json={"email": _email(), "role": "viewer"})
            assert r.status_code == 201, r.text
            return str(r.json()["code"])

        return self._fresh(make)  # type: ignore[no-any-return]


def _destinations() -> list[dict[str, Any]]:
    return [
        {
            "kind": "s3",
            "name": unique("b"),
            "endpoint": "http://127.0.0.1:9",
            "bucket": "berth-backups",
            "region": "eu-west-1",
            "path_style": False,
            "prefix": "db/nightly/",
            "access_key": "AKIAEXAMPLE",
            "secret_key": "s3cret",
        },
        {"kind": "directory", "name": unique("b"), "server_id": "local", "path": "/var/backups/berth"},
    ]


def _backup_settings(ctx: Context) -> dict[str, Any]:
    return {"destinations": [ctx.destination()], "compression": "zstd", "retention": {"keep_count": 3, "keep_days": 7}}


def _email() -> str:
    return f"{unique('u')}@example.com"


def _ssh_key() -> str:
    """A real private key: the api reads it (a placeholder string is refused before any field is looked at)."""
    return ssh_keys.generate_key_pair()[0]


def _app_certificate(ctx: Context) -> dict[str, Any]:
    """An upload for the team's application: a certificate of its first host, its hosts left to the api."""
    app = ctx.client.get(f"/v1/applications/{ctx.ids['application_id']}", headers=ctx.admin).json()
    host = next(h for svc in app["services"] for h in svc.get("hosts", []))
    fields = upload_fields(host)
    return {
        "name": unique("c"),
        "certificate": fields["certificate"],
        "key": fields["key"],
        "application_id": app["id"],
    }


def _variables() -> list[dict[str, Any]]:
    return [
        {"name": "LOG_LEVEL", "value": "debug", "kind": "runtime"},
        {"name": "NODE_ENV", "value": "production", "kind": "build"},
        {"name": "API_KEY", "value": "s3cret", "secret": True},
    ]


# request schema name -> factories of valid bodies (fresh names each call)
BASES: dict[str, Callable[[Context], list[dict[str, Any]]]] = {
    "ProjectCreate": lambda _: [{"name": unique("p"), "description": "a project"}],
    "ProjectUpdate": lambda _: [{"name": unique("p"), "description": "a project"}],
    "EnvironmentCreate": lambda _: [{"name": unique("e")}],
    "ApplicationCreate": lambda _: (
        [{"name": unique("a"), **_app(s)} for s in _sources()]
        + [{"name": unique("a"), **c} for c in _composes()]
        + [{"name": unique("a"), **_app(s), "git_access": g} for s, g in _given_access()]
    ),
    "ApplicationUpdate": lambda ctx: (
        [_app(s) for s in _sources()] + [{**c, PATH_IDS: {"application_id": ctx.compose_app()}} for c in _composes()]
    ),
    "TokenCreate": lambda _: [{"name": "ci deploy", "expires_in_days": 30}],
    "TeamTokenCreate": lambda ctx: [{"team_id": ctx.own_team(), "name": "ci deploy", "expires_in_days": 30}],
    "TeamLeave": lambda ctx: [{"team_id": ctx.own_team()}],
    "CancelRequest": lambda _: [{"reason": "superseded"}],
    "ChannelCreateIn": lambda _: _channels(),
    "ChannelUpdateIn": lambda ctx: [
        {**c, PATH_IDS: {"channel_id": ctx.channel_of(c["target"]["kind"])}} for c in _channels()
    ],
    "SubscriptionCreateIn": lambda ctx: [
        {
            "event_types": ["evt.deployment.failed"],
            "project_id": ctx.ids["project_id"],
            "application_id": ctx.ids["application_id"],
        }
    ],
    "WebhookIn": lambda ctx: [
        {"watch_paths": ["site", "!site/**/*.md"], "tags": True, PATH_IDS: {"application_id": ctx.webhook_app()}}
    ],
    "StatusTargetIn": lambda ctx: [
        {
            "forge": "github",
            "api_url": "https://api.github.com",
            "repository": "acme/blog",
            "token": "ghp_0123456789abcdef",
            PATH_IDS: {"application_id": ctx.webhook_app()},
        }
    ],
    "WebhookPatch": lambda ctx: [{"watch_paths": ["api/**"], PATH_IDS: {"application_id": ctx.webhook_app()}}],
    "HostKeysIn": lambda ctx: [
        {
            "host_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"],
            PATH_IDS: {"application_id": ctx.keyed_app()},
        }
    ],
    "DeployKeyCreate": lambda ctx: [  # 409 after the body was validated: the application has its key already
        {
            "host_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"],
            PATH_IDS: {"application_id": ctx.keyed_app()},
        }
    ],
    "AcceptHostKeyIn": lambda ctx: [  # 409: the server offered no other key
        {"fingerprint": "SHA256:" + "A" * 43, PATH_IDS: {"application_id": ctx.keyed_app()}}
    ],
    "TokenIn": lambda _: [{"username": "x-access-token", "token": "ghp_0123456789abcdef"}],
    "PreviewSettingsIn": lambda ctx: [
        {
            "host_pattern": "pr-{number}-{app}.{base}",
            "allow_forks": False,
            "database": "fresh",
            "ttl_hours": 24,
            "max_previews": 3,
            "env": [{"name": "MODE", "value": "preview"}, {"name": "API_KEY", "value": "s3cret", "secret": True}],
            PATH_IDS: {"application_id": ctx.webhook_app()},
        }
    ],
    "RollbackRequest": lambda ctx: [{"deployment_id": ctx.ids["deployment_id"]}],  # 409: it did not succeed
    "DrainIn": lambda _: [{"to": ["local"]}, {"to": ["local"], "abandon_volume_data": True}],
    "AutoscalePolicy": lambda _: [
        {"min": 1, "max": 4, "cpu_percent": 70.0, "cooldown_s": 60.0},
        {"min": 2, "max": 3, "memory_percent": 80.0, "cooldown_s": 30.0},
    ],  # 409: the path names the built-in server, never drained
    "AlertRuleSpec": lambda _: [
        {"name": "cpu", "target_kind": "app", "target_id": "*", "metric": "cpu_pct", "threshold": 90.0}
    ],
    "InvitationCreate": lambda _: [{"email": _email(), "role": "viewer"}],
    "InvitationAccept": lambda ctx: [{"code": ctx.invitation_code(), "name": "Ada L", "token_name": "laptop"}],
    "VariablesPut": lambda _: [{"variables": _variables()}],
    "DotenvImportIn": lambda _: [{"content": "# comment\nA=1\nexport B='two words'\nC=\"x\\ny\"\n", "kind": "runtime"}],
    "GroupCreate": lambda _: [{"name": unique("g"), "redeploy_on_change": False, "variables": _variables()}],
    "GroupUpdate": lambda _: [{"name": unique("g")}],
    "SwarmCreate": lambda ctx: [
        {"name": unique("w"), "manager_server_id": ctx.server(), "worker_server_ids": [ctx.server()]}
    ],
    "ServerCreate": lambda _: [
        {"name": unique("s"), "host": "server.example.com", "port": 2222, "user": "deploy", "private_key": _ssh_key()},
        {"name": unique("s"), "host": "192.0.2.10"},
    ],
    "DatabaseCreate": lambda _: [
        {
            "name": unique("d"),
            "engine": "postgresql",
            "version": "15",
            "server_id": "local",
            "limits": {"cpus": 0.5, "memory_mb": 256},
            "config": {"max_connections": "50", "timezone": "Europe/Paris"},
            "public": {"port": 20000 + int(unique("")[-4:], 16) % 40000, "allow": ["203.0.113.0/24", "2001:db8::/32"]},
        },
        {"name": unique("d"), "engine": "redis", "version": "7", "config": {"maxmemory": "64mb"}},
    ],
    "S3DestinationIn": lambda _: _destinations(),
    "DestinationUpdate": lambda ctx: [
        {
            "name": unique("b"),
            "endpoint": "http://127.0.0.1:9",
            "bucket": "other-bucket",
            "region": "us-east-1",
            "path_style": True,
            "prefix": "x/",
            "access_key": "AKIAOTHER",
            "secret_key": "n3w",
            PATH_IDS: {"destination_id": ctx.destination("s3")},
        },
        {
            "name": unique("b"),
            "server_id": "local",
            "path": "/srv/dumps",
            PATH_IDS: {"destination_id": ctx.destination()},
        },
    ],
    "BackupCreate": lambda ctx: [_backup_settings(ctx)],
    "ScheduleIn": lambda ctx: [
        {"cron": "30 2 * * 1-5", "timezone": "Europe/Berlin", "grace_s": 600, **_backup_settings(ctx)}
    ],
    "RestoreCreate": lambda ctx: [  # 409: the backup did not succeed (the sweep has no scheduler)
        {
            "backup_id": ctx.backup(),
            "destination": ctx.destination(),
            "target": "new",
            "name": unique("r"),
            "confirm": False,
        }
    ],
    "LinkCreate": lambda ctx: [{"database_id": ctx.database(), "variable": "DATABASE_URL"}],
    "AlertRuleIn": lambda _: [
        {"name": "cpu", "target_kind": "app", "target_id": "*", "metric": "cpu_pct", "threshold": 90.0}
    ],
    # 409 after the body was validated: the sweep's databases never run (no scheduler)
    "UpgradeCreate": lambda ctx: [
        {"version": "7.4.1", "destinations": [ctx.destination()], PATH_IDS: {"database_id": ctx.database()}}
    ],
    "TemplateDeploy": lambda ctx: [
        {
            "environment_id": ctx.ids["environment_id"],
            "name": unique("t"),
            "domain": f"{unique('t')}.example.com",
            "variables": {},
        }
    ],
    "TemplateDocumentDeploy": lambda ctx: [
        {
            "environment_id": ctx.ids["environment_id"],
            "name": unique("t"),
            "domain": f"{unique('t')}.example.com",
            "variables": {},
            "document": SWEEP_TEMPLATE,
        }
    ],
    # a service the sweep's application has; 409 after the body was validated (no live deployment: no scheduler)
    "RunCreate": lambda _: [{"command": ["python", "manage.py", "migrate"], "service": "web", "timeout_s": 60}],
    "JobCreate": lambda _: [
        {
            "name": unique("j"),
            "cron": "30 2 * * *",
            "timezone": "Europe/Berlin",
            "command": ["python", "cleanup.py"],
            "service": "web",
            "concurrency": "replace",
        }
    ],
    "JobUpdate": lambda ctx: [
        {
            "name": unique("j"),
            "cron": "*/5 * * * *",
            "timezone": "UTC",
            "command": ["python", "cleanup.py"],
            "service": "web",
            "enabled": False,
            PATH_IDS: ctx.job(),
        }
    ],
    # the sweep's application has the volume ``data`` (its worker ``jobs``), placed on ``local``
    "VolumeBackupCreate": lambda ctx: [
        {**_backup_settings(ctx), "stop_service": True, "server_id": "local", PATH_IDS: {"volume": "data"}}
    ],
    "VolumeScheduleIn": lambda ctx: [
        {
            "cron": "30 2 * * *",
            "timezone": "Europe/Berlin",
            **_backup_settings(ctx),
            "server_id": "local",
            PATH_IDS: {"volume": "data"},
        }
    ],
    "VolumeRestoreCreate": lambda ctx: [  # 409: the backup did not succeed (the sweep has no scheduler)
        {
            "backup_id": ctx.volume_backup(),
            "destination": ctx.destination(),
            "target": "new",
            "name": unique("r")[:20],
            "confirm": False,
            PATH_IDS: {"volume": "data"},
        }
    ],
    "DrillCreate": lambda ctx: [
        {  # the sweep's own database is a Redis one, and its backup (ctx.backup) is of it
            "backup_id": ctx.backup(),
            "destination": ctx.destination(),
            "check": {"kind": "keys", "exist": ["session:1"]},
        },
        {
            "check": {"kind": "row_counts", "tables": [{"table": "orders", "at_least": 1}]},
            "check_database": "shop",
            PATH_IDS: {"database_id": ctx.database("postgresql")},
        },
        {
            "check": {"kind": "query", "sql": "SELECT count(*) FROM orders", "equals": "3"},
            "check_database": "shop",
            PATH_IDS: {"database_id": ctx.database("postgresql")},
        },
    ],
    "DrillScheduleIn": lambda ctx: [
        {
            "cron": "0 4 * * 0",
            "timezone": "UTC",
            "destination": ctx.destination(),
            "check": {"kind": "row_counts", "tables": [{"table": "orders", "at_least": 1}]},
            "check_database": "shop",
            PATH_IDS: {"database_id": ctx.database("postgresql")},
        },
        {
            "cron": "0 4 * * 0",
            "timezone": "UTC",
            "destination": ctx.destination(),
            "check": {"kind": "query", "sql": "SELECT count(*) FROM orders", "equals": "3"},
            PATH_IDS: {"database_id": ctx.database("postgresql")},
        },
        {
            "cron": "0 4 * * 0",
            "timezone": "UTC",
            "destination": ctx.destination(),
            "check": {"kind": "keys", "exist": ["session:1"]},
            PATH_IDS: {"database_id": ctx.database()},
        },
    ],
    "CertificateCreate": lambda ctx: [
        {"name": unique("c"), **upload_fields(), "chain": ""},
        _app_certificate(ctx),
    ],
    "RegistryCreate": lambda _: [
        {"name": unique("r"), "host": f"{unique('r')}.example.com:5000", "username": "deploy", "password": "token"},
        {
            "name": unique("r"),
            "host": f"{unique('r')}.example.com:5000",
            "username": "deploy",
            "password": "token",
            "namespace": "acme/builds",
        },
    ],
}


def schema_name(spec: Spec, schema: dict[str, Any]) -> str:
    for alt in [schema, *(schema.get("anyOf") or []), *(schema.get("oneOf") or [])]:
        if "$ref" in alt:
            return str(alt["$ref"].rsplit("/", 1)[-1])
    return ""


def string_paths(
    spec: Spec, schema: dict[str, Any], path: tuple[Any, ...] = (), depth: int = 0
) -> set[tuple[Any, ...]]:
    """Every place a string can go in a body of ``schema`` (``*`` for list items; all union alternatives)."""
    if depth > 12:
        return set()
    found: set[tuple[Any, ...]] = set()
    for alt in spec.alternatives(schema):
        if alt.get("type") == "string" and "const" not in alt and "enum" not in alt:
            found.add(path)
        for name, sub in alt.get("properties", {}).items():
            found |= string_paths(spec, sub, (*path, name), depth + 1)
        if "items" in alt:
            found |= string_paths(spec, alt["items"], (*path, "*"), depth + 1)
    return found


def write_only(spec: Spec, schema: dict[str, Any], path: tuple[Any, ...]) -> bool:
    """True when the field is documented as never returned (``writeOnly``)."""
    current: list[dict[str, Any]] = [schema]
    for key in path:
        nxt = []
        for s in current:
            for alt in spec.alternatives(s):
                if isinstance(key, int) and "items" in alt:
                    nxt.append(alt["items"])
                elif key in alt.get("properties", {}):
                    nxt.append(alt["properties"][key])
        current = nxt
    return any(
        spec.resolve(s).get("writeOnly") or any(a.get("writeOnly") for a in spec.alternatives(s)) for s in current
    )


def generic(path: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("*" if isinstance(k, int) else k for k in path)


def bases_for(spec: Spec, schema: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    name = schema_name(spec, schema)
    if name in BASES:
        return BASES[name](ctx)
    return augment(spec, schema, spec.example(schema))


def base_for(spec: Spec, schema: dict[str, Any], ctx: Context, index: int) -> dict[str, Any]:
    """``bases_for(...)[index]`` made anew (fresh names, and fresh resources for that body only)."""
    return materialize(bases_for(spec, schema, replace(ctx, lazy=True))[index])  # type: ignore[no-any-return]


def augment(spec: Spec, schema: dict[str, Any], minimal: Any) -> list[Any]:
    """The minimal body, and one more body per optional top-level string field set to a plain value."""
    bodies = [minimal]
    if not isinstance(minimal, dict):
        return bodies
    props = spec.alternatives(schema)[0].get("properties", {})
    for key, sub in props.items():
        if key not in minimal and any(a.get("type") == "string" for a in spec.alternatives(sub)):
            bodies.append({**minimal, key: spec.example(sub)})
    return bodies


def string_leaves(body: Any) -> list[tuple[Any, ...]]:
    return [path for path, value in leaves(body) if isinstance(value, str) and path and path[-1] != "kind"]


def secret_variable(body: Any, path: tuple[Any, ...]) -> bool:
    """The value of a variable sent with ``"secret": true``: masked in answers by design."""
    return bool(path and path[-1] == "value" and get(body, (*path[:-1], "secret")) is True)


def with_value(body: Any, path: tuple[Any, ...], value: str) -> Any:
    return put(body, path, value)
