"""Secret values at rest: the scheduler stores a deployment's snapshot with secret values sealed.

The key is derived from ``BERTH_SECRET_KEY``; rotating that key makes sealed values of unfinished
deployments unreadable (they then end failed with a reason saying so, never started half-configured).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from berth_common.catalogue import ApplicationSpec

PREFIX = "sealed:"


class UnsealError(ValueError):
    """A sealed value could not be opened (the secret key changed)."""


class Sealer:
    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(b"berth-scheduler-spec-v1:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def _seal_list(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**e, "value": PREFIX + self._fernet.encrypt(str(e["value"]).encode()).decode()} if e.get("secret") else e
            for e in items
        ]

    def _open_list(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for e in items:
            value = e.get("value")
            if e.get("secret") and isinstance(value, str) and value.startswith(PREFIX):
                try:
                    value = self._fernet.decrypt(value[len(PREFIX) :].encode()).decode()
                except InvalidToken:
                    raise UnsealError(
                        f"the secret value of {e.get('name')!r} cannot be read: BERTH_SECRET_KEY changed"
                    ) from None
            out.append({**e, "value": value})
        return out

    def seal(self, spec: ApplicationSpec) -> dict[str, Any]:
        data = spec.model_dump(mode="json")
        data["env"] = self._seal_list(data["env"])
        if data["source"].get("kind") == "git":
            data["source"]["build_args"] = self._seal_list(data["source"]["build_args"])
        if data["source"].get("auth"):  # a registry password or token, like a secret variable
            auth = data["source"]["auth"]
            (sealed,) = self._seal_list([{"name": "registry", "value": auth["password"], "secret": True}])
            data["source"]["auth"] = {**auth, "password": sealed["value"]}
        return data

    def open(self, data: dict[str, Any]) -> ApplicationSpec:
        data = {**data, "env": self._open_list(list(data.get("env", [])))}
        source = dict(data["source"])
        if source.get("kind") == "git":
            source["build_args"] = self._open_list(list(source.get("build_args", [])))
        if source.get("auth"):
            auth = source["auth"]
            (opened,) = self._open_list(
                [{"name": f"registry {auth.get('registry')}", "value": auth["password"], "secret": True}]
            )
            source["auth"] = {**auth, "password": opened["value"]}
        data["source"] = source
        return ApplicationSpec.model_validate(data)
