"""The Docker Engine API build request (``POST /build``) as pure data, and the image cache key.

The build runs with the platform's background limits (``berth_common.background``: lower CPU shares, a
memory limit), so a build never starves the applications serving on the same machine.

Build args that are not secret go in ``buildargs``. Secret ones never do (the builder persists ARG values
used by RUN in the image history): they are served to ``RUN --mount=type=secret,id=NAME`` through a
BuildKit session, so only their names appear here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from berth_common import labels as label
from berth_common.background import DEFAULT as DEFAULT_LIMITS
from berth_common.background import BackgroundLimits

Engine = Literal["buildkit", "legacy"]


class SecretsNeedBuildKit(ValueError):
    """Secret build args were given while the builder is configured for the legacy engine."""


@dataclass(frozen=True)
class Arg:
    name: str
    value: str = field(repr=False)
    secret: bool = False


@dataclass(frozen=True)
class BuildRequest:
    tag: str
    dockerfile: str
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]
    engine: Engine = "buildkit"
    nocache: bool = False
    session: str | None = None
    secret_names: tuple[str, ...] = ()
    limits: BackgroundLimits = DEFAULT_LIMITS

    def query(self) -> dict[str, str]:
        """The query string of ``POST /build``, every value a string, keys in a fixed order."""
        params = {
            "t": self.tag,
            "dockerfile": self.dockerfile,
            "buildargs": json.dumps(dict(sorted(self.buildargs.items())), separators=(",", ":")),
            "labels": json.dumps(dict(sorted(self.labels.items())), separators=(",", ":")),
            "rm": "1",
            "forcerm": "1",
            "pull": "0",
            "nocache": "1" if self.nocache else "0",
            "version": "2" if self.engine == "buildkit" else "1",
            **self.limits.build_query(),
        }
        if self.session:
            params["session"] = self.session
        return params


def build_request(
    *,
    tag: str,
    dockerfile: str,
    args: Sequence[Arg],
    labels: Mapping[str, str],
    engine: Engine,
    nocache: bool = False,
    session: str | None = None,
    limits: BackgroundLimits = DEFAULT_LIMITS,
) -> BuildRequest:
    secret = tuple(sorted(a.name for a in args if a.secret))
    if secret and engine != "buildkit":
        raise SecretsNeedBuildKit(
            f"secret build args ({', '.join(secret)}) need BuildKit secret mounts; the builder runs the "
            "legacy engine (BERTH_BUILD_ENGINE=legacy), which would store their values in the image history"
        )
    return BuildRequest(
        tag=tag,
        dockerfile=dockerfile,
        buildargs={a.name: a.value for a in args if not a.secret},
        labels=dict(labels),
        engine=engine,
        nocache=nocache,
        session=session if secret else None,
        secret_names=secret,
        limits=limits,
    )


def image_labels(
    *, build_id: str, deployment_id: str, application_id: str, commit: str, cache_key: str, service: str | None = None
) -> dict[str, str]:
    """The ``berth.*`` labels of a built image; ``service``: the compose service it was built for."""
    found = {
        label.BUILD: build_id,
        label.DEPLOYMENT: deployment_id,
        label.APPLICATION: application_id,
        label.COMMIT: commit,
        label.CACHE_KEY: cache_key,
    }
    if service is not None:
        found[label.SERVICE] = service
    return found


def cache_key(
    *,
    key: bytes,
    repository: str,
    commit: str,
    subdirectory: str,
    dockerfile: str | None,
    args: Sequence[Arg],
    image_map: Mapping[str, str],
    engine: Engine,
) -> str:
    """Same inputs, same image: HMAC-SHA256 (keyed, so secret arg values cannot be guessed from it) over
    the repository (credentials removed), the commit, the paths, every build arg, the image map and engine."""
    doc = {
        "v": 2,  # 2: generated Dockerfiles listen on $PORT
        "repository": repository,
        "commit": commit,
        "subdirectory": subdirectory,
        "dockerfile": dockerfile,
        "args": sorted([a.name, a.value, a.secret] for a in args),
        "image_map": sorted(image_map.items()),
        "engine": engine,
    }
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return hmac.new(key, raw, hashlib.sha256).hexdigest()
