"""Whether the overlay networks the farm creates are encrypted (Docker's IPsec), and the
one check that an existing network says the same.

``FARM_OVERLAY_ENCRYPTION`` is ``on``, ``off`` or ``auto``. ``auto`` is on for now: the
local multi-node farm's kernel probe (docs/plans/multi-node.md, D5) plugs in at
``overlay_encrypted()``, the one place that turns the setting into a yes or no.
Production refuses ``off`` at start-up (farm/settings.py) and here, for an override.

Docker encrypts a network whose options hold the key ``encrypted`` at all (libnetwork
looks only at the key), so an unencrypted network gets no such option, not "false".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from nodes.swarm import SwarmError

ENCRYPTED_OPTION = "encrypted"


def overlay_encrypted() -> bool:
    """The effective setting: whether a new farm or site overlay network is encrypted."""
    mode = settings.FARM_OVERLAY_ENCRYPTION
    if mode == "off" and settings.PRODUCTION:
        raise ImproperlyConfigured(
            "FARM_OVERLAY_ENCRYPTION=off is refused in production: the overlay networks "
            "would carry their traffic between hosts unencrypted."
        )
    if mode == "auto":
        return True  # until a probe says this kernel cannot (no ESP/GCM): then False
    return bool(mode == "on")


def network_options(encrypted: bool) -> dict[str, str]:
    """The driver options to create an overlay network with."""
    return {ENCRYPTED_OPTION: "true"} if encrypted else {}


def is_encrypted(attrs: Mapping[str, Any]) -> bool:
    """Whether an existing network (the Engine's JSON for it) is encrypted."""
    return ENCRYPTED_OPTION in (attrs.get("Options") or {})


def check_encryption(name: str, attrs: Mapping[str, Any], wanted: bool, fix: str) -> None:
    """Refuse a network that exists with the other encryption than the setting asks
    for: using it would silently run the farm with the other one. ``fix`` says how."""
    found = is_encrypted(attrs)
    if found != wanted:
        raise SwarmError(
            f"Network {name} exists {'encrypted' if found else 'unencrypted'}, but "
            f"FARM_OVERLAY_ENCRYPTION={settings.FARM_OVERLAY_ENCRYPTION} makes networks "
            f"{'encrypted' if wanted else 'unencrypted'}; {fix}",
            retryable=False,
        )
