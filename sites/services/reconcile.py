"""Start a reconcile (every site compared with Swarm, MariaDB and the disk): an
operator from the panel, or the schedule every 10 minutes. One runs at a time."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest

from farm import audit
from farm.models import Operation, User
from farm.operations import start_operation
from farm.permissions import require_operator
from sites.operations import (
    RECONCILE_TARGET_ID,
    RECONCILE_TARGET_REPR,
    RECONCILE_TARGET_TYPE,
    ReconcileSites,
)


def start_reconcile(*, actor: User | None, request: HttpRequest | None = None) -> Operation:
    """The ``site.reconcile`` operation; OperationConflict while one is unfinished.
    ``actor`` None: the schedule."""
    if actor is not None:
        require_operator(actor, "Only operators compare the farm with its sites.")
    with transaction.atomic():
        operation = start_operation(
            ReconcileSites.name,
            target_type=RECONCILE_TARGET_TYPE,
            target_id=RECONCILE_TARGET_ID,
            target_repr=RECONCILE_TARGET_REPR,
            actor=actor,
        )
        if actor is not None:
            audit.record("site.reconcile", actor=actor, target=operation, request=request)
    return operation


def running_reconcile() -> Operation | None:
    """The unfinished reconcile, if one is queued or running."""
    return (
        Operation.objects.unfinished()
        .for_target(RECONCILE_TARGET_TYPE, RECONCILE_TARGET_ID)
        .first()
    )
