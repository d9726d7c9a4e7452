"""The banner on every signed-in page that says why provisioning cannot work now.

It shows what the workers recorded (``EngineStatus``, written every minute by
``nodes.tasks.sync_node_inventory`` and by ``farm_run``). A page render never asks
Docker and writes nothing: in production the web process has no Docker socket. It
reads that one row by its primary key, which costs what a cache lookup would (the
shared cache is a table by default) without a write every few seconds to refresh it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from nodes.models import EngineStatus

# The workers record the engine's status every minute; older than this, they
# have stopped (the task queue is not running) and provisioning would not happen.
STALE_AFTER = timedelta(minutes=5)


def provisioning_banner() -> str:
    """Why provisioning cannot work right now ('' when it can), from what the workers
    recorded: one read, no write."""
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


def engine_banner(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_authenticated:
        return {}
    return {"provisioning_banner": provisioning_banner()}
