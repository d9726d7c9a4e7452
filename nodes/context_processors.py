"""The banner on every signed-in page that says why provisioning cannot work now.

It shows what the workers recorded (``EngineStatus``, written every minute by
``nodes.tasks.sync_node_inventory`` and by ``farm_run``). A page render never asks
Docker and never writes that row: in production the web process has no Docker
socket. The message is kept in the shared cache for 15 s, so a busy panel reads
the row a few times a minute.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from nodes.models import EngineStatus

BANNER_CACHE_KEY = "nodes:engine-banner"
BANNER_TTL_S = 15
# The workers record the engine's status every minute; older than this, they
# have stopped (the task queue is not running) and provisioning would not happen.
STALE_AFTER = timedelta(minutes=5)


def _banner_now() -> str:
    status = EngineStatus.objects.filter(pk=1).first()
    if status is None:
        return (
            "Provisioning is waiting: the workers have not reported on the Swarm yet. "
            "Is the task queue (qcluster) running?"
        )
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
    recorded; the row is read at most every 15 s."""
    message = cache.get(BANNER_CACHE_KEY)
    if message is None:
        message = _banner_now()
        cache.set(BANNER_CACHE_KEY, message, BANNER_TTL_S)
    return str(message)


def engine_banner(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_authenticated:
        return {}
    return {"provisioning_banner": provisioning_banner()}
