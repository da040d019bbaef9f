"""What a deployment deploys: the application's spec (source, services, variables, limits) as the api
sends it in ``cmd.deployment.start``, secret values sealed on the wire."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from berth_common import sealing
from berth_common.catalogue.buffering import RequestBuffering
from berth_common.catalogue.compose_runtime import SecretFile
from berth_common.catalogue.compose_storage import ComposeStorage, VolumeSecret
from berth_common.catalogue.composed import Composed, dependency_refusal
from berth_common.catalogue.files import MAX_FILES, AppFile, files_refusal
from berth_common.catalogue.git_auth import GitAuth
from berth_common.catalogue.port_hosts import PortHosts, port_hosts_refusal, route_path_of
from berth_common.catalogue.registry_auth import NAMESPACE_PATTERN as NAMESPACE_PATTERN
from berth_common.catalogue.registry_auth import PullPolicy as PullPolicy
from berth_common.catalogue.registry_auth import PushTarget as PushTarget
from berth_common.catalogue.registry_auth import RegistryAuth as RegistryAuth
from berth_common.catalogue.runs import RunArgv, RunTimeoutS
from berth_common.catalogue.secret_args import SecretArg
from berth_common.catalogue.spec_base import MAX_SEALED_CHARS as MAX_SEALED_CHARS
from berth_common.catalogue.spec_base import MAX_VALUE_CHARS as MAX_VALUE_CHARS
from berth_common.catalogue.spec_base import Spec as Spec
from berth_common.catalogue.tls import TlsOptions
from berth_common.values import ContainerEnvName, EnvVarName, GitRef, GitUrl, ImageRef, RouteHost, RoutePath, Slug

# --- deployments -----------------------------------------------------------------------------------
# The api owns an application's desired state and sends a snapshot of it in ``cmd.deployment.start``;
# the scheduler never reads the api's tables. Secret values (``EnvVar.secret``) print as ``**********`` in
# repr, str, logs and python dumps, and travel sealed in JSON (``berth_common.sealing``, AES-256-GCM bound
# to the variable's purpose and name). A deserialised snapshot keeps the sealed token; the consumer calls
# ``EnvVar.reveal()`` where the value is used (the container env, the BuildKit secret mount, redaction).


DeploymentState = Literal[
    "queued",
    "building",
    "starting",
    "verifying",
    "routing",
    "draining",
    "stopping_old",
    "succeeded",
    "failed",
    "cancelled",
]
DEPLOYMENT_STATES: tuple[str, ...] = get_args(DeploymentState)
HEALTH_PATH_PATTERN = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,1023}$"
LOCAL_SERVER = "local"
# The servers a service runs on, by id (the api resolves the names a user gives); empty: the built-in
# server ``local``. Each one runs at least one replica; the replicas are spread over them in turn.
Servers = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=32)]


def servers_of(service: WebService | WorkerService) -> list[str]:
    """The servers ``service`` runs on, in order (``local`` when it names none)."""
    return list(service.servers) or [LOCAL_SERVER]


class EnvVar(Spec):
    """A runtime variable; ``secret`` ones are never logged or shown, and sealed whenever serialised to JSON.

    ``value`` holds the plaintext (as the api builds it) or a sealed token (as a consumer receives it);
    :meth:`reveal` gives the plaintext either way. Two variables are equal when their plaintexts are.
    """

    PURPOSE: ClassVar[str] = "env"

    name: ContainerEnvName
    value: SecretStr = Field(max_length=MAX_SEALED_CHARS)
    secret: bool = False

    @field_validator("value")
    @classmethod
    def _value_length(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if len(raw) > MAX_VALUE_CHARS and not sealing.is_sealed(raw):
            raise ValueError(f"a value is limited to {MAX_VALUE_CHARS} characters")
        return value

    @property
    def aad(self) -> str:
        """What a sealed value of this variable is bound to: its purpose and its name."""
        return f"berth/{self.PURPOSE}/{self.name}"

    @property
    def sealed(self) -> bool:
        """The value is held as a sealed token (a secret received from the bus)."""
        return self.secret and sealing.is_sealed(self.value.get_secret_value())

    def reveal(self) -> str:
        """The plaintext, for the point of use only (raises ``sealing.UnsealError`` if it does not open)."""
        raw = self.value.get_secret_value()
        return sealing.unseal(raw, self.aad) if self.sealed else raw

    @field_serializer("value", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        raw = value.get_secret_value()
        if not self.secret:
            return raw
        return sealing.reseal(raw, self.aad) if sealing.is_sealed(raw) else sealing.seal(raw, self.aad)

    def _plain(self) -> str:
        try:
            return self.reveal()
        except sealing.SealingError:
            return self.value.get_secret_value()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EnvVar):
            return NotImplemented
        return (self.PURPOSE, self.name, self.secret) == (
            other.PURPOSE,
            other.name,
            other.secret,
        ) and self._plain() == other._plain()

    def __hash__(self) -> int:
        return hash((self.PURPOSE, self.name, self.secret))


class BuildArg(EnvVar):
    """A build argument; a secret one is sealed for its purpose (a runtime variable's token does not open here)."""

    PURPOSE: ClassVar[str] = "build-arg"

    name: EnvVarName


class ImageSource(Spec):
    """Run a prebuilt image (also how a rollback names a previous deployment's image: no rebuild).

    ``pull_policy``: ``always`` asks the registry before every deployment, ``if-missing`` uses the image on
    the server when it is there (None: ``if-missing`` for a digest, ``always`` for a tag). ``auth``: the
    team's credentials for the image's registry, if it has some. Both are left out of a dump when unset.
    """

    kind: Literal["image"] = "image"
    image: ImageRef
    pull_policy: PullPolicy | None = Field(default=None, exclude_if=lambda v: v is None)
    auth: RegistryAuth | None = Field(default=None, exclude_if=lambda v: v is None)


class GitSource(Spec):
    """Build from a git repository (the builder validates the URL, ref and paths)."""

    kind: Literal["git"] = "git"
    repository: GitUrl
    ref: GitRef
    subdirectory: str = Field(default="", max_length=1024)
    dockerfile: str | None = Field(default="Dockerfile", max_length=1024)  # None: Berth's own detection
    build_args: list[BuildArg] = Field(default_factory=list, max_length=200)
    # The server whose engine builds the image (a server id; ``local``: the control plane's engine).
    build_server: str = Field(default=LOCAL_SERVER, min_length=1, max_length=64, exclude_if=lambda v: v == LOCAL_SERVER)
    # The team's push registry for builds: the built image is pushed there and pulled from there.
    push: PushTarget | None = Field(default=None, exclude_if=lambda v: v is None)
    # The team's credentials for the registries the image map sends base images to (``FROM`` lines).
    base_auths: list[RegistryAuth] = Field(default_factory=list, max_length=20, exclude_if=lambda v: not v)
    # A private repository's credentials (the deploy key and pinned host keys, or a token): ``git_auth.py``.
    auth: GitAuth | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("build_args", mode="before")
    @classmethod
    def _as_build_args(cls, value: Any) -> Any:
        """Accept ``EnvVar`` objects (as callers build them) as build args."""
        if not isinstance(value, list | tuple):
            return value
        return [
            BuildArg(name=a.name, value=a.value, secret=a.secret)
            if isinstance(a, EnvVar) and not isinstance(a, BuildArg)
            else a
            for a in value
        ]


class ServiceBuild(Spec):
    """A compose service's own build from the application's git repository (``GitSource`` gives the
    repository, ref, build server and registries): its context ``subdirectory`` (relative to the
    repository's root), ``dockerfile`` inside it and its ``build_args`` (literal, or the application's
    build arg of that name, secret ones sealed). The scheduler asks the builder for one image per such
    service and runs the service with it."""

    subdirectory: str = Field(default="", max_length=1024)
    dockerfile: str = Field(default="Dockerfile", min_length=1, max_length=1024)
    build_args: list[BuildArg] = Field(default_factory=list, max_length=200, exclude_if=lambda v: not v)

    @field_validator("build_args", mode="before")
    @classmethod
    def _as_build_args(cls, value: Any) -> Any:
        return GitSource._as_build_args(value)


def _one_image(service: WebService | WorkerService) -> None:
    """A service runs its own image or its own build, not both."""
    if service.image is not None and service.build is not None:
        raise ValueError(f"service {service.name} has both an image and a build: give one")


class ResourceLimits(Spec):
    cpus: float | None = Field(default=None, gt=0, le=512)  # CPU cores -> HostConfig.NanoCpus
    memory_mb: int | None = Field(default=None, ge=6, le=4_194_304)  # -> HostConfig.Memory (bytes)


class WebService(Composed):
    kind: Literal["web"] = "web"
    name: Slug
    port: int = Field(ge=1, le=65535)
    replicas: int = Field(default=1, ge=1, le=64)
    health_path: str = Field(default="/", pattern=HEALTH_PATH_PATTERN)
    command: list[str] | None = Field(default=None, max_length=256)  # None: the image's CMD
    hosts: list[RouteHost] = Field(default_factory=list, max_length=100)  # generated + custom, lowercased
    limits: ResourceLimits | None = None  # None: the application's
    servers: Servers = Field(default_factory=list, max_length=32, exclude_if=lambda v: not v)
    # A compose service's own image (None: the application's) and its variables, layered over the
    # application's ``env`` (a name in both: this one); ``catalogue/composed.py`` has the other fields.
    image: ImageSource | None = Field(default=None, exclude_if=lambda v: v is None)
    env: list[EnvVar] = Field(default_factory=list, max_length=500, exclude_if=lambda v: not v)
    # A compose service's own build (None: the application's image or ``image``); exclusive with ``image``
    build: ServiceBuild | None = Field(default=None, exclude_if=lambda v: v is None)
    # Traefik reads each request's whole body before forwarding it (``catalogue/buffering.py``); None: not
    buffer_requests: RequestBuffering | None = Field(default=None, exclude_if=lambda v: v is None)
    # only requests under this URL path prefix reach the service, on every one of its hosts, unstripped
    # (``ApplyRoutes.path_prefix``); None: the whole hosts
    path_prefix: RoutePath | None = Field(default=None, exclude_if=lambda v: v is None)
    # more of the container's ports, each routed on some of ``hosts`` (``catalogue/port_hosts.py``)
    port_hosts: list[PortHosts] = Field(default_factory=list, max_length=16, exclude_if=lambda v: not v)
    # hosts of ``port_hosts`` entries the service's own port keeps too, under its own path (another path)
    shared_hosts: list[RouteHost] = Field(default_factory=list, max_length=100, exclude_if=lambda v: not v)

    @model_validator(mode="after")
    def _image_or_build(self) -> WebService:
        _one_image(self)
        refusal = port_hosts_refusal(self.port, self.hosts, self.port_hosts, self.path_prefix, self.shared_hosts)
        if refusal is not None:
            raise ValueError(f"service {self.name}: {refusal}")
        if self.internal_network == "only":
            raise ValueError(f"service {self.name}: a routed service cannot sit on the internal network only")
        return self

    def routed_ports(self) -> list[tuple[int, list[str]]]:
        """(container port, its hosts) of every routed port, the service's own first (its hosts: those no
        ``port_hosts`` entry takes, and its ``shared_hosts``)."""
        taken = {h for p in self.port_hosts for h in p.hosts} - {h.lower() for h in self.shared_hosts}
        own = [h for h in self.hosts if h.lower() not in taken]
        return [(self.port, own), *((p.port, list(p.hosts)) for p in self.port_hosts)]

    def routed_path(self, port: int) -> str | None:
        """The URL path prefix the route of a routed ``port`` serves (None: the whole hosts): its
        ``port_hosts`` entry's path, else the service's ``path_prefix``."""
        entry = next((p for p in self.port_hosts if p.port == port), None)
        return route_path_of(entry, self.path_prefix)


class WorkerService(Composed):
    kind: Literal["worker"] = "worker"
    name: Slug
    replicas: int = Field(default=1, ge=1, le=64)
    command: list[str] | None = Field(default=None, max_length=256)
    health_command: list[str] | None = Field(default=None, max_length=256)  # None: running and not restarting
    limits: ResourceLimits | None = None
    servers: Servers = Field(default_factory=list, max_length=32, exclude_if=lambda v: not v)
    image: ImageSource | None = Field(default=None, exclude_if=lambda v: v is None)  # as WebService's
    env: list[EnvVar] = Field(default_factory=list, max_length=500, exclude_if=lambda v: not v)
    build: ServiceBuild | None = Field(default=None, exclude_if=lambda v: v is None)  # as WebService's

    @model_validator(mode="after")
    def _image_or_build(self) -> WorkerService:
        _one_image(self)
        return self


PRE_DEPLOY_DEFAULT_TIMEOUT_S = 600


class PreDeployJob(Spec):
    """A command run once from the deployment's new image before any new replica starts (database
    migrations, say): in a fresh container with ``service``'s environment, volumes and networks (None: the
    first web service, else the first worker). It must exit 0 within ``timeout_s`` for the rollout to go
    on; otherwise the deployment fails and the live version keeps serving."""

    command: RunArgv
    service: Slug | None = Field(default=None, exclude_if=lambda v: v is None)
    timeout_s: RunTimeoutS = PRE_DEPLOY_DEFAULT_TIMEOUT_S


class ApplicationSpec(ComposeStorage):  # a compose application's volume and network options: ComposeStorage
    """Snapshot of an application's desired state at the time of a deployment."""

    name: Slug  # used in container names: berth-<name>-<service>-<dep>-<n>
    environment: Slug = "production"
    source: Annotated[ImageSource | GitSource, Field(discriminator="kind")]
    services: list[Annotated[WebService | WorkerService, Field(discriminator="kind")]] = Field(
        min_length=1, max_length=20
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=500)
    limits: ResourceLimits = ResourceLimits()
    restart_policy: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    stop_timeout_s: int = Field(default=10, ge=0, le=3600)  # SIGTERM, then SIGKILL after this
    network: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    # A compose application: each service also joins the application's own network (one per application
    # and server), reachable there by its name and its aliases (left out of a dump while false)
    private_network: bool = Field(default=False, exclude_if=lambda v: not v)
    # HTTPS for the web services' hosts (left out of a dump while it is the default: HTTP only)
    tls: TlsOptions = Field(default_factory=TlsOptions, exclude_if=lambda v: v == TlsOptions())
    # The job that must succeed before the rollout starts (left out of a dump while there is none)
    pre_deploy: PreDeployJob | None = Field(default=None, exclude_if=lambda v: v is None)
    # The files its services mount (``catalogue/files.py``; left out of a dump while there are none)
    files: list[AppFile] = Field(default_factory=list, max_length=MAX_FILES, exclude_if=lambda v: not v)

    @model_validator(mode="after")
    def _files(self) -> ApplicationSpec:
        refusal = files_refusal(self.files, [(s.name, s.files) for s in self.services])
        if refusal is not None:
            raise ValueError(refusal)
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> ApplicationSpec:
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        writers: dict[str, str] = {}
        for svc in self.services:
            for v in svc.volumes:
                if v.single_writer and writers.setdefault(v.name, svc.name) != svc.name:
                    raise ValueError(f"the single-writer volume {v.name} is mounted by two services")
        env_names = [e.name for e in self.env]
        if len(set(env_names)) != len(env_names):
            raise ValueError("environment variable names must be unique")
        for svc in self.services:
            own = [e.name for e in svc.env]
            if len(set(own)) != len(own):
                raise ValueError(f"environment variable names of service {svc.name} must be unique")
        refusal = dependency_refusal(
            [(s.name, [d.service for d in s.depends_on], list(s.aliases)) for s in self.services]
        )
        if refusal is not None:
            raise ValueError(refusal)
        return self

    def secret_values(self) -> list[str]:
        """Every secret value (runtime and build), to redact from any text the scheduler emits."""
        variables: list[EnvVar] = [e for e in self.env if e.secret]
        variables += [e for svc in self.services for e in svc.env if e.secret]
        if isinstance(self.source, GitSource):
            variables += [a for a in self.source.build_args if a.secret]
        variables += [a for svc in self.services if svc.build is not None for a in svc.build.build_args if a.secret]
        found = revealed(variables)
        found += [v for svc in self.services for a in svc.secret_args if (v := _opened(a))]
        found += [v for svc in self.services for f in svc.secret_files if (v := _opened(f))]
        found += [v for o in self.volume_options.values() if o.secret is not None and (v := _opened(o.secret))]
        own = [svc.image.auth for svc in self.services if svc.image is not None and svc.image.auth is not None]
        for auth in [*registry_auths(self.source), *own]:
            try:
                found += [p for p in [auth.reveal()] if p]
            except sealing.UnsealError:
                pass
        git_auth = self.source.auth if isinstance(self.source, GitSource) else None
        if git_auth is not None and git_auth.kind == "https":  # a private repository's token
            try:
                found.append(git_auth.token_text())
            except sealing.UnsealError:
                pass
        return found


def registry_auths(source: ImageSource | GitSource) -> list[RegistryAuth]:
    """Every registry credential a source carries (to redact its passwords)."""
    if isinstance(source, ImageSource):
        return [source.auth] if source.auth is not None else []
    return ([source.push.auth] if source.push is not None else []) + list(source.base_auths)


def _opened(arg: SecretArg | SecretFile | VolumeSecret) -> str:
    try:
        return arg.reveal()
    except sealing.UnsealError:
        return ""


def revealed(variables: Iterable[EnvVar]) -> list[str]:
    """The non-empty plaintexts of ``variables`` (to redact from text). A value that does not open is left
    out: nothing here could have revealed it. Without a configured key this raises ``NoSealingKeyError``."""
    found = []
    for v in variables:
        try:
            found.append(v.reveal())
        except sealing.UnsealError:
            continue
    return [v for v in found if v]
