"""Record what the Swarm says about the sites' services (``StackState``), so that the
site page reads a row instead of asking the Swarm on every poll of every open tab.

Workers record: every site at once each minute (two Docker calls in all), and one
site right after each step that changes its stack (deploy, converge, scale, remove).
A failed asking never fails anything: the row keeps what was last seen and says why
it is not newer; the page shows how old it is.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from farm.errors import FarmError
from sites import swarm_site
from sites.models import Site, SiteStatus, StackState
from sites.stack import stack_name

# Recorded every minute: older than this, the workers have stopped asking (or the
# Swarm stopped answering) and the page says so.
STALE_AFTER = timedelta(minutes=3)


def _rows(services: list[swarm_site.ServiceState]) -> list[dict[str, Any]]:
    return [asdict(service) for service in services]


def _save(states: list[StackState]) -> None:
    """Insert or overwrite the rows, in one statement per 500."""
    unique = ["site"] if connection.features.supports_update_conflicts_with_target else None
    StackState.objects.bulk_create(
        states,
        batch_size=500,
        update_conflicts=True,
        unique_fields=unique,
        update_fields=["services", "seen_at", "checked_at", "error"],
    )


def _failed(site_ids: list[int] | None, exc: FarmError, now: datetime) -> str:
    """The Swarm did not answer: keep what was seen, say why it is not newer."""
    rows = (
        StackState.objects.all()
        if site_ids is None
        else StackState.objects.filter(site_id__in=site_ids)
    )
    rows.update(error=exc.message, checked_at=now)
    return exc.message


def record_site(site_id: int) -> str:
    """One site's services as the Swarm says now (after a step changed its stack)."""
    now = timezone.now()
    try:
        services = swarm_site.stack_state(site_id)
    except FarmError as exc:
        return _failed([site_id], exc, now)
    _save([StackState(site_id=site_id, services=_rows(services), seen_at=now, checked_at=now)])
    return f"{stack_name(site_id)}: {len(services)} services"


def record_all() -> str:
    """Every site's services, from one reading of the Swarm (the minute task)."""
    now = timezone.now()
    try:
        by_stack = swarm_site.stack_states()
    except FarmError as exc:
        return _failed(None, exc, now)
    StackState.objects.filter(site__status=SiteStatus.DELETED).delete()
    live = Site.objects.exclude(status=SiteStatus.DELETED).values_list("pk", flat=True)
    states = [
        StackState(
            site_id=pk,
            services=_rows(by_stack.get(stack_name(pk), [])),
            seen_at=now,
            checked_at=now,
        )
        for pk in live
    ]
    _save(states)
    return f"{len(states)} sites recorded"


def notice(state: StackState | None, now: datetime | None = None) -> str:
    """What the page says about how old the row is ('' when it is fresh)."""
    if state is None:
        return (
            "Not recorded yet: the workers record each site's services every minute. "
            "Is the task queue (qcluster) running?"
        )
    now = now or timezone.now()
    if state.error:
        return f"The Swarm did not answer when the workers last asked: {state.error}"
    if state.seen_at is None or now - state.seen_at > STALE_AFTER:
        return "The workers have stopped recording the services. Is qcluster running?"
    return ""
