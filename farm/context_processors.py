from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

_BANNER_TTL_S = 15.0
# The workers record the engine's status every minute; older than this, they
# have stopped (the task queue is not running) and provisioning would not happen.
STALE_AFTER = timedelta(minutes=5)
_banner_cache: tuple[float, str] = (0.0, "")


def _banner_now() -> str:
    from nodes.inventory import record_engine_status
    from nodes.models import EngineStatus
    from nodes.swarm import engine_status

    status = EngineStatus.objects.filter(pk=1).first()
    if status is None:
        # Nothing recorded yet (a panel that just started): ask once and remember.
        available, why = engine_status()
        record_engine_status(available, why)
        return "" if available else f"Provisioning is unavailable: {why}"
    if not status.available:
        return f"Provisioning is unavailable: {status.message}"
    if timezone.now() - status.checked_at > STALE_AFTER:
        return (
            f"Provisioning is stalled: the workers last reported on the Swarm "
            f"{timesince(status.checked_at)} ago. Is the task queue (qcluster) running?"
        )
    return ""


def provisioning_banner() -> str:
    """Why provisioning cannot work right now ('' when it can), from what the workers
    recorded; read at most every 15 s per process."""
    global _banner_cache
    checked_at, message = _banner_cache
    if time.monotonic() - checked_at < _BANNER_TTL_S:
        return message
    message = _banner_now()
    _banner_cache = (time.monotonic(), message)
    return message


def farm(request: HttpRequest) -> dict[str, Any]:
    context: dict[str, Any] = {"farm_env": settings.FARM_ENV}
    if request.user.is_authenticated:
        context["provisioning_banner"] = provisioning_banner()
    return context
