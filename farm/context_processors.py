from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest

_BANNER_TTL_S = 30.0
_banner_cache: tuple[float, str] = (0.0, "")


def provisioning_banner() -> str:
    """Why provisioning cannot work right now ('' when it can); asked at most every 30 s."""
    global _banner_cache
    checked_at, message = _banner_cache
    if time.monotonic() - checked_at < _BANNER_TTL_S:
        return message
    from nodes.swarm import engine_status

    available, why = engine_status()
    message = "" if available else f"Provisioning is unavailable: {why}"
    _banner_cache = (time.monotonic(), message)
    return message


def farm(request: HttpRequest) -> dict[str, Any]:
    context: dict[str, Any] = {"farm_env": settings.FARM_ENV}
    if request.user.is_authenticated:
        context["provisioning_banner"] = provisioning_banner()
    return context
