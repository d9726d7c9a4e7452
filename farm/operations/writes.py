"""The writes of a worker that runs an operation: each lands only while that worker
still owns the operation (one transaction with the operation's row)."""

from __future__ import annotations

from collections.abc import Callable

from django.db import models, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from farm.models import Operation, OperationStatus, OperationStep
from farm.redaction import mask_swarm_secrets


def write_if_owner(operation_id: int, worker: str, write: Callable[[], object]) -> bool:
    """Run ``write`` only while ``worker`` still owns the running operation.

    One transaction: the operation's row is updated first (its heartbeat, since
    the worker is evidently alive), which locks it, so a claim by another worker
    waits for this write and then finds a fresh heartbeat; or the other worker
    already owns it, nothing matches, and nothing is written.
    """
    with transaction.atomic():
        owned = Operation.objects.filter(
            pk=operation_id, worker=worker, status=OperationStatus.RUNNING
        ).update(heartbeat_at=timezone.now())
        if not owned:
            return False
        write()
    return True


def append_step_log(step_id: int, message: str, *, owner: tuple[int, str] | None = None) -> bool:
    """Append lines to a step's log. With ``owner`` (operation id, worker) only while
    that worker owns the operation; returns False when it does not. Swarm join tokens
    never reach the log (farm.redaction.mask_swarm_secrets)."""
    stamp = timezone.now().strftime("%H:%M:%S")
    masked = mask_swarm_secrets(message)
    lines = "".join(f"{stamp} {line}\n" for line in (masked.splitlines() or [""]))

    def write() -> None:
        OperationStep.objects.filter(pk=step_id).update(
            log=Concat(F("log"), Value(lines), output_field=models.TextField())
        )

    if owner is None:
        write()
        return True
    return write_if_owner(owner[0], owner[1], write)
