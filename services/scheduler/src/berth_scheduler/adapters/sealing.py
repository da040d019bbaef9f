"""Secret values at rest: the scheduler stores a deployment's snapshot with secret values sealed.

Sealed with ``berth_common.sealing`` for the scheduler's purpose, the key derived from
``BERTH_SECRET_KEY``; each value is bound to its field and name. Rows written in the format stored before
(Fernet tokens) still open. Rotating that key without keeping the previous one makes sealed values of
unfinished deployments unreadable (they then end failed with a reason saying so, never started
half-configured).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from berth_common import sealing
from berth_common.catalogue import ApplicationSpec

PREFIX = "sealed:"  # every sealed value stored by the scheduler, in the current format or the one before


class UnsealError(ValueError):
    """A sealed value could not be opened (the secret key changed)."""


class Sealer:
    def __init__(self, secret_key: str, previous: Iterable[str] = ()) -> None:
        self._ring = sealing.Keyring.from_secrets(secret_key, [p for p in previous if p], sealing.SCHEDULER_SPECS)

    def __repr__(self) -> str:
        return f"Sealer({self._ring!r})"

    def _seal_list(self, items: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
        return [
            {**e, "value": self._ring.seal(str(e["value"]), f"berth-scheduler/{field}/{e['name']}")}
            if e.get("secret")
            else e
            for e in items
        ]

    def _open_list(self, items: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
        out = []
        for e in items:
            value = e.get("value")
            if e.get("secret") and isinstance(value, str) and value.startswith(PREFIX):
                try:
                    value = self._ring.unseal(value, f"berth-scheduler/{field}/{e.get('name')}")
                except sealing.UnsealError:
                    raise UnsealError(
                        f"the secret value of {e.get('name')!r} cannot be read: BERTH_SECRET_KEY changed"
                    ) from None
            out.append({**e, "value": value})
        return out

    def seal_value(self, value: str, place: str) -> str:
        """One secret value at rest, bound to ``place`` (``swarm/<id>/worker-token``)."""
        return self._ring.seal(value, f"berth-scheduler/{place}")

    def open_value(self, token: str, place: str) -> str:
        try:
            return self._ring.unseal(token, f"berth-scheduler/{place}")
        except sealing.UnsealError:
            raise UnsealError(f"the sealed value of {place} cannot be read: BERTH_SECRET_KEY changed") from None

    def seal(self, spec: ApplicationSpec) -> dict[str, Any]:
        data = spec.model_dump(mode="json")
        data["env"] = self._seal_list(data["env"], "env")
        if data["source"].get("kind") == "git":
            data["source"]["build_args"] = self._seal_list(data["source"]["build_args"], "build-arg")
        if data["source"].get("auth") and data["source"].get("kind") == "image":  # a registry password or token
            auth = data["source"]["auth"]
            (sealed,) = self._seal_list([{"name": "password", "value": auth["password"], "secret": True}], "registry")
            data["source"]["auth"] = {**auth, "password": sealed["value"]}
        if data["source"].get("auth") and data["source"].get("kind") == "git":  # a private repository's key or token
            data["source"]["auth"] = self._git_auth(data["source"]["auth"], self._seal_list)
        return data

    @staticmethod
    def _git_auth(auth: dict[str, Any], fn: Any) -> dict[str, Any]:
        found = [{"name": k, "value": auth[k], "secret": True} for k in ("private_key", "token") if auth.get(k)]
        return {**auth, **{e["name"]: e["value"] for e in fn(found, "git")}}

    def open(self, data: dict[str, Any]) -> ApplicationSpec:
        data = {**data, "env": self._open_list(list(data.get("env", [])), "env")}
        source = dict(data["source"])
        if source.get("kind") == "git":
            source["build_args"] = self._open_list(list(source.get("build_args", [])), "build-arg")
        if source.get("auth") and source.get("kind") == "git":
            source["auth"] = self._git_auth(source["auth"], self._open_list)
        elif source.get("auth"):
            auth = source["auth"]
            (opened,) = self._open_list([{"name": "password", "value": auth["password"], "secret": True}], "registry")
            source["auth"] = {**auth, "password": opened["value"]}
        data["source"] = source
        return ApplicationSpec.model_validate(data)
