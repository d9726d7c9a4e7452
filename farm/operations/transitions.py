"""The transitions people (and schedules) make an operation go through: start it,
retry it from the failed step, roll it back, cancel it. ``farm.runner`` does the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from farm.errors import OperationConflict, OperationStateError
from farm.models import Operation, OperationStatus, OperationStep, StepStatus, Tenant
from farm.models.operations import UNFINISHED, OperationMode
from farm.operations.kinds import get_kind
from farm.operations.writes import append_step_log

if TYPE_CHECKING:
    from farm.models import User


def _conflict_for(key: str) -> OperationConflict:
    running = Operation.objects.filter(lock_key=key).first()
    if running is None:
        return OperationConflict(
            "Another operation was started for this target at the same moment; try again.",
            retryable=True,
        )
    return OperationConflict(
        f"{running.target_repr or running.target_key} already has an unfinished operation "
        f"({running.kind} #{running.pk}, {running.status_label.lower()}); "
        "wait for it to finish or cancel it first.",
        retryable=True,
    )


def enqueue(operation_id: int) -> None:
    """Hand the operation to the queue once the surrounding transaction commits."""
    from django_q.tasks import async_task

    def _send() -> None:
        Operation.objects.filter(pk=operation_id).update(enqueued_at=timezone.now())
        async_task(
            "farm.tasks.run_operation",
            operation_id,
            task_name=f"operation-{operation_id}",
            group="operations",
        )

    transaction.on_commit(_send)


def start_operation(
    kind_name: str,
    *,
    target_type: str,
    target_id: object,
    target_repr: str = "",
    tenant: Tenant | None = None,
    actor: User | None = None,
    params: dict[str, Any] | None = None,
    after_create: Callable[[Operation], None] | None = None,
    lock_name: str = "",
) -> Operation:
    """Create the operation and its steps, and enqueue it after commit.

    Raises OperationConflict when the target already has an unfinished
    operation; the database's unique ``lock_key`` decides, so two concurrent
    callers can never both succeed. ``lock_name`` locks something other than
    the target itself (a restore holds its site's lock, so no backup of that
    site can interleave with it).
    """
    kind = get_kind(kind_name)
    if kind.target_type != target_type:
        raise OperationStateError(f"{kind_name} acts on {kind.target_type}, not {target_type}.")
    key = lock_name or f"{target_type}:{target_id}"
    try:
        with transaction.atomic():
            operation = Operation.objects.create(
                kind=kind_name,
                target_type=target_type,
                target_id=str(target_id),
                target_repr=target_repr[:255],
                tenant=tenant,
                actor=actor,
                params=params or {},
                lock_key=key,
                lock_name=key,
            )
            OperationStep.objects.bulk_create(
                OperationStep(operation=operation, position=i, name=s.name, label=s.label)
                for i, s in enumerate(kind.steps, start=1)
            )
            if after_create is not None:
                after_create(operation)
    except IntegrityError as exc:
        if Operation.objects.filter(lock_key=key).exists() or "lock_key" in str(exc):
            raise _conflict_for(key) from exc
        raise
    enqueue(operation.pk)
    return operation


def _reopen(operation: Operation, *, mode: str, note: str) -> Operation:
    """Put a finished operation back in the queue, taking the target's lock again.

    Only while it is still the latest operation on what it locks: the UPDATE
    takes the lock (the unique ``lock_key``) first, so no operation can start on
    it meanwhile, and then, in the same transaction, a later operation that
    already ran refuses the reopen (everything is rolled back).
    """
    try:
        with transaction.atomic():
            updated = Operation.objects.filter(
                pk=operation.pk, status__in=(OperationStatus.FAILED, OperationStatus.CANCELLED)
            ).update(
                status=OperationStatus.QUEUED,
                mode=mode,
                lock_key=operation.lock,
                error="",
                cancel_requested=False,
                finished_at=None,
                heartbeat_at=None,
                worker="",
                attempts=0,
            )
            if not updated:
                raise OperationStateError(
                    f"Operation #{operation.pk} is {operation.get_status_display().lower()} "
                    "and cannot be restarted."
                )
            later = operation.superseded_by()
            if later is not None:
                raise OperationStateError(operation.superseded_reason(later))
            if mode == OperationMode.FORWARD:
                # Resume from the step that failed (or was interrupted).
                operation.steps.filter(status__in=(StepStatus.FAILED, StepStatus.RUNNING)).update(
                    status=StepStatus.PENDING, error=""
                )
            for step in operation.steps.exclude(status=StepStatus.PENDING):
                append_step_log(step.pk, f"--- {note} ---")
    except IntegrityError as exc:
        raise _conflict_for(operation.lock) from exc
    enqueue(operation.pk)
    operation.refresh_from_db()
    return operation


def _refuse_if_superseded(operation: Operation) -> None:
    later = operation.superseded_by()
    if later is not None:
        raise OperationStateError(operation.superseded_reason(later))


def retry_operation(operation: Operation, *, note: str = "retry") -> Operation:
    operation.refresh_from_db()
    if not operation.is_restartable:
        raise OperationStateError("Only a failed or cancelled operation can be retried.")
    _refuse_if_superseded(operation)
    return _reopen(operation, mode=OperationMode.FORWARD, note=note)


def roll_back_operation(operation: Operation, *, note: str = "roll back") -> Operation:
    operation.refresh_from_db()
    if not get_kind(operation.kind).reversible:
        raise OperationStateError(
            f"A {operation.kind} cannot be rolled back: undoing it would remove what the "
            "site had before. Retry it, or restore from a backup."
        )
    if not operation.is_restartable:
        raise OperationStateError("Only a failed or cancelled operation can be rolled back.")
    _refuse_if_superseded(operation)
    return _reopen(operation, mode=OperationMode.ROLLBACK, note=note)


def cancel_operation(operation: Operation) -> Operation:
    """A queued operation stops at once; a running one stops at the next step boundary."""
    with transaction.atomic():
        stopped = Operation.objects.filter(pk=operation.pk, status=OperationStatus.QUEUED).update(
            status=OperationStatus.CANCELLED,
            lock_key=None,
            finished_at=timezone.now(),
            error="Cancelled before it started.",
        )
        if not stopped:
            flagged = Operation.objects.filter(pk=operation.pk, status__in=UNFINISHED).update(
                cancel_requested=True
            )
            if not flagged:
                raise OperationStateError("The operation has already finished.")
    operation.refresh_from_db()
    if stopped:
        get_kind(operation.kind).on_cancelled(operation)
    return operation
