"""What a compose application pins of its storage and network beyond Berth's defaults: part of the
application's spec (``ApplicationSpec`` has ``ComposeStorage``'s fields), each left out of a dump when unset.

- ``VolumeOptions``: a named volume's options for Docker's ``local`` driver (compose's ``driver_opts``): an
  in-memory filesystem (``tmpfs``) or a network share (``nfs``, ``nfs4``, ``cifs``) the engine mounts
  when a container uses the volume (Docker's ``DriverOpts``: ``type``, ``device``, ``o``). A host
  directory (``o: bind``) is no volume option: the api makes it a host bind mount. Docker keeps the
  options a volume was created with; the scheduler reports a change rather than applying it. A share's
  password is never in ``o``: it is the ``secret`` (``VolumeSecret``: the mount option ``password`` or
  ``pass`` and the value of the application's secret variable the compose file names), sealed on the wire,
  masked wherever the spec is shown, and put into the mount options only in the engine's create call.
- ``NetworkOptions``: the application's private network's IPv4 subnet and gateway (compose's ``ipam``)
  and its MTU (``com.docker.network.driver.mtu``); a service may then pin its address in it
  (``ipv4_address`` of the service, ``catalogue/composed.py``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from berth_common import sealing
from berth_common.catalogue.sealed_value import SealedValue
from berth_common.catalogue.spec_base import Spec
from berth_common.values import Slug

__all__ = [
    "PASSWORD_OPTIONS",
    "VOLUME_TYPES",
    "ComposeStorage",
    "NetworkOptions",
    "VolumeOptions",
    "VolumeSecret",
    "canonical_ipv4",
    "masked_options",
]

VOLUME_TYPES = ("tmpfs", "nfs", "nfs4", "cifs")
# mount options and sources: no blank, quote, control character or shell metacharacter (pure data anyway)
OPTIONS_PATTERN = r"^[A-Za-z0-9_.:/@+=,%~-]{0,1024}$"
DEVICE_PATTERN = r"^[A-Za-z0-9_.:/@+=%~-]{1,1024}$"
PASSWORD_OPTIONS = ("password", "pass")  # the mount options of a share (cifs) that hold its password
MASK = "**********"


def masked_options(o: str) -> str:
    """Mount options as they may be shown: the value of each password option replaced by ``**********``."""
    return ",".join(
        f"{flag.split('=', 1)[0]}={MASK}" if flag.split("=", 1)[0] in PASSWORD_OPTIONS and "=" in flag else flag
        for flag in o.split(",")
    )


def canonical_ipv4(value: str) -> str:
    """A plain IPv4 address in its canonical form."""
    return str(ipaddress.IPv4Address(value))


def _subnet(value: str) -> str:
    return str(ipaddress.IPv4Network(value, strict=True))


class VolumeSecret(SealedValue):
    """A share's password: the mount ``option`` it is given as, and its ``value`` (sealed on the wire)."""

    PURPOSE: ClassVar[str] = "volume-password"

    option: Literal["password", "pass"]
    value: SecretStr = Field(max_length=sealing.sealed_length(4 * 1024))

    @property
    def aad(self) -> str:
        return f"berth/{self.PURPOSE}/{self.option}"


class VolumeOptions(Spec):
    """A named volume's local-driver options: its filesystem ``type``, what it mounts (``device``), the mount
    options (``o``, never a password) and a share's password (``secret``)."""

    type: Literal["tmpfs", "nfs", "nfs4", "cifs"]
    device: str = Field(pattern=DEVICE_PATTERN)
    o: str = Field(default="", pattern=OPTIONS_PATTERN, exclude_if=lambda v: not v)
    secret: VolumeSecret | None = Field(default=None, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _no_password_in_o(self) -> VolumeOptions:
        for flag in self.o.split(","):
            if flag.split("=", 1)[0] in PASSWORD_OPTIONS:
                raise ValueError("a share's password is the volume's secret, never written in o")
        return self

    def driver_opts(self) -> dict[str, str]:
        """Docker's ``DriverOpts`` of the volume: its password revealed into ``o``, for the engine's call only."""
        o = self.o
        if self.secret is not None:
            given = f"{self.secret.option}={self.secret.reveal()}"
            if re.search(r"[,\s]", given):
                raise ValueError("a share's password cannot hold a comma or a blank: the mount options split there")
            o = f"{o},{given}" if o else given
        return {"type": self.type, "device": self.device, **({"o": o} if o else {})}


class NetworkOptions(Spec):
    """The private network's pinned IPv4 ``subnet`` (and its ``gateway``, in it) and ``mtu``."""

    subnet: Annotated[str, AfterValidator(_subnet)] | None = Field(default=None, exclude_if=lambda v: v is None)
    gateway: Annotated[str, AfterValidator(canonical_ipv4)] | None = Field(default=None, exclude_if=lambda v: v is None)
    mtu: int | None = Field(default=None, ge=576, le=9216, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _gateway_inside(self) -> NetworkOptions:
        if self.gateway is not None:
            if self.subnet is None:
                raise ValueError("a gateway needs the subnet it is in")
            if ipaddress.IPv4Address(self.gateway) not in ipaddress.IPv4Network(self.subnet):
                raise ValueError(f"the gateway {self.gateway} is not in the subnet {self.subnet}")
        return self


class ComposeStorage(Spec):
    """The application's volume options (by volume name) and its private network's options."""

    volume_options: dict[Slug, VolumeOptions] = Field(default_factory=dict, max_length=64, exclude_if=lambda v: not v)
    network_options: NetworkOptions | None = Field(default=None, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _pinned_addresses(self) -> ComposeStorage:
        """A pinned service address is in the pinned subnet, not its gateway, and one service's only; the
        service runs one replica, recreated (two containers cannot hold one address)."""
        subnet = self.network_options.subnet if self.network_options is not None else None
        taken: dict[str, str] = {}
        for svc in getattr(self, "services", []):
            address = getattr(svc, "ipv4_address", None)
            if address is None:
                continue
            if subnet is None or ipaddress.IPv4Address(address) not in ipaddress.IPv4Network(subnet):
                raise ValueError(f"the address {address} of service {svc.name} is not in the private network's subnet")
            if self.network_options is not None and address == self.network_options.gateway:
                raise ValueError(f"the address {address} of service {svc.name} is the network's gateway")
            if getattr(svc, "replicas", 1) != 1 or getattr(svc, "strategy", "recreate") != "recreate":
                raise ValueError(f"service {svc.name} pins its address: it runs 1 replica with strategy recreate")
            if taken.setdefault(address, svc.name) != svc.name:
                raise ValueError(f"the address {address} is pinned by services {taken[address]} and {svc.name}")
        return self
