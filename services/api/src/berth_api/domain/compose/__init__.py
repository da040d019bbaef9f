"""Compose applications: a compose file, normalised by the real parser, as Berth's own services (pure).

``precheck`` refuses what would make the parser read a file of the server; ``translate`` turns the parser's
normalised model into the services, start order and notes of a Berth application; ``keys`` says which keys
are carried, noted, dangerous (allowed per team by an administrator) or refused.
"""

from berth_api.domain.compose.keys import ComposeRefusal
from berth_api.domain.compose.precheck import precheck
from berth_api.domain.compose.translate import HostMap, Policy, start_order, translate

__all__ = ["ComposeRefusal", "HostMap", "Policy", "precheck", "start_order", "translate"]
