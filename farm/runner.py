"""Runs operations: claim, execute steps in order, record everything as it goes.

A worker claims an operation (``farm.lease``) with one conditional UPDATE: it succeeds only if
the operation is queued, or running with a heartbeat older than the lease (its
worker died). While it works, a heartbeat thread keeps the claim fresh; when it
cannot (the database is locked, the connection dropped) it retries with a
backoff, and gives up before the lease runs out: the claim is then *lost*, the
step's child processes are killed and the worker stops. Steps already done are
never run again; the step that was running when a worker died is run again
(steps are idempotent). Every write of a step or an operation is guarded by
``worker=<this worker>`` (one transaction with the operation's row), so a worker
that lost its claim notices and stops instead of overwriting the new owner.

A claim beyond ``FARM_OPERATION_MAX_ATTEMPTS`` fails the operation instead of
running the step yet again: each earlier worker died inside it (killed, or over
the queue's timeout), and the next one would too. A person can still retry it.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from farm import processes
from farm.errors import FarmError
from farm.lease import Heartbeat, claim, worker_identity
from farm.models import Operation, OperationStatus, OperationStep, StepStatus
from farm.models.operations import OperationMode
from farm.operations import (
    LostClaim,
    OperationCancelled,
    OperationKind,
    StepContext,
    StepSkipped,
    append_step_log,
    enqueue,
    get_kind,
    write_if_owner,
)

__all__ = ["Heartbeat", "LostClaim", "Runner", "claim", "requeue_stale_operations"]

logger = logging.getLogger(__name__)


class Runner:
    def __init__(self, operation: Operation, kind: OperationKind, worker: str) -> None:
        self.operation = operation
        self.kind = kind
        self.worker = worker
        self.heartbeat: Heartbeat | None = None

    # -- guarded writes -------------------------------------------------------
    def _owned(self) -> Q:
        return Q(pk=self.operation.pk, worker=self.worker, status=OperationStatus.RUNNING)

    def _claim_lost(self) -> bool:
        return self.heartbeat is not None and self.heartbeat.is_lost()

    def _owned_write(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.beat_seen()

    def _touch(self) -> None:
        if self._claim_lost():
            raise LostClaim()
        if not Operation.objects.filter(self._owned()).update(heartbeat_at=timezone.now()):
            raise LostClaim()
        self._owned_write()

    def _finish(self, status: str, error: str = "", *, retryable: bool = True) -> None:
        updated = Operation.objects.filter(self._owned()).update(
            status=status,
            error=error,
            retryable=retryable,
            finished_at=timezone.now(),
            lock_key=None,
            state=self.operation.state,
        )
        if not updated:
            raise LostClaim()
        self.operation.refresh_from_db()
        hook = {
            OperationStatus.SUCCEEDED: self.kind.on_succeeded,
            OperationStatus.FAILED: self.kind.on_failed,
            OperationStatus.CANCELLED: self.kind.on_cancelled,
            OperationStatus.ROLLED_BACK: self.kind.on_rolled_back,
        }[OperationStatus(status)]
        hook(self.operation)

    def _set_step(self, step: OperationStep, **fields: object) -> None:
        """Write the step's row, only while this worker owns the operation."""
        if self._claim_lost():
            raise LostClaim()
        if not write_if_owner(
            self.operation.pk,
            self.worker,
            lambda: OperationStep.objects.filter(pk=step.pk).update(**fields),
        ):
            raise LostClaim()
        self._owned_write()
        for name, value in fields.items():
            setattr(step, name, value)

    def _log(self, step: OperationStep, message: str) -> None:
        if not append_step_log(step.pk, message, owner=(self.operation.pk, self.worker)):
            raise LostClaim()

    def _cancel_requested(self) -> bool:
        return bool(
            Operation.objects.filter(pk=self.operation.pk)
            .values_list("cancel_requested", flat=True)
            .first()
        )

    # -- one step ---------------------------------------------------------------
    def _execute(self, step: OperationStep, *, undo: bool) -> tuple[str, str, bool]:
        """Run (or undo) one step; returns (step status, error message, retryable)."""
        definition = self.kind.step(step.name)
        self._touch()
        started = timezone.now()
        self._set_step(
            step,
            status=StepStatus.UNDOING if undo else StepStatus.RUNNING,
            attempts=step.attempts + 1,
            started_at=started,
            finished_at=None,
            error="",
        )
        ctx = StepContext(
            self.operation,
            step,
            self.kind,
            worker=self.worker,
            claim_lost=self._claim_lost,
            owned_write=self._owned_write,
        )
        began = time.monotonic()
        outcome, error, retryable = (
            StepStatus.UNDONE if undo else StepStatus.SUCCEEDED,
            "",
            True,
        )
        try:
            with processes.owned_by(self.worker):
                if undo:
                    definition.undo(ctx)
                else:
                    definition.run(ctx)
        except LostClaim:
            raise
        except StepSkipped as skipped:
            ctx.log(f"Skipped: {skipped.reason}")
            outcome = StepStatus.SKIPPED
        except OperationCancelled:
            ctx.log("Stopped: the operation was cancelled.")
            outcome = StepStatus.PENDING
        except FarmError as exc:
            ctx.log(f"Error: {exc.message}")
            outcome, error, retryable = StepStatus.FAILED, exc.message, exc.retryable
        except Exception as exc:
            logger.exception("operation %s step %s crashed", self.operation.pk, step.name)
            ctx.log("".join(traceback.format_exception_only(exc)).strip())
            outcome, error, retryable = StepStatus.FAILED, f"{type(exc).__name__}: {exc}", True
        elapsed_ms = int((time.monotonic() - began) * 1000)
        if not Operation.objects.filter(self._owned()).update(state=self.operation.state):
            raise LostClaim()
        self._set_step(
            step,
            status=outcome,
            finished_at=timezone.now(),
            duration_ms=elapsed_ms,
            error=error,
        )
        return outcome, error, retryable

    # -- whole operation --------------------------------------------------------
    def forward(self) -> str:
        for step in self.operation.steps.order_by("position"):
            if step.is_done:
                continue
            if self._cancel_requested():
                self._log(step, "Not started: the operation was cancelled.")
                self._finish(OperationStatus.CANCELLED, "Cancelled.")
                return OperationStatus.CANCELLED
            outcome, error, retryable = self._execute(step, undo=False)
            if outcome == StepStatus.PENDING:
                self._finish(OperationStatus.CANCELLED, f"Cancelled during “{step.label}”.")
                return OperationStatus.CANCELLED
            if outcome == StepStatus.FAILED:
                self._finish(OperationStatus.FAILED, f"{step.label}: {error}", retryable=retryable)
                return OperationStatus.FAILED
        self._finish(OperationStatus.SUCCEEDED)
        return OperationStatus.SUCCEEDED

    def rollback(self) -> str:
        """Undo the failed step (it may have done part of its work), then the
        completed steps, in reverse order."""
        to_undo = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.RUNNING, StepStatus.UNDOING)
        for step in self.operation.steps.order_by("-position"):
            if step.status not in to_undo:
                continue
            outcome, error, retryable = self._execute(step, undo=True)
            if outcome == StepStatus.FAILED:
                self._finish(
                    OperationStatus.FAILED,
                    f"Undo of “{step.label}” failed: {error}",
                    retryable=retryable,
                )
                return OperationStatus.FAILED
            if outcome == StepStatus.PENDING:
                self._set_step(step, status=StepStatus.SUCCEEDED)
                self._finish(OperationStatus.CANCELLED, "Roll back cancelled.")
                return OperationStatus.CANCELLED
        self._finish(OperationStatus.ROLLED_BACK)
        return OperationStatus.ROLLED_BACK

    def give_up_after_attempts(self) -> str:
        """Fail an operation delivered once too often: every worker before this one
        stopped inside the same step (killed, or over the queue's timeout)."""
        earlier = self.operation.attempts - 1
        step = (
            self.operation.steps.filter(status__in=(StepStatus.RUNNING, StepStatus.UNDOING))
            .order_by("position")
            .first()
        )
        where = f" in “{step.label}”" if step is not None else ""
        message = (
            f"Stopped after {earlier} attempts: each worker that ran it stopped{where} "
            f"before finishing (killed, or over the task queue's limit of "
            f"{settings.Q_TIMEOUT} s). It is not tried again by itself; fix the cause, "
            "then retry it."
        )
        if step is not None:
            self._log(step, message)
            self._set_step(step, status=StepStatus.FAILED, error=message)
        self._finish(OperationStatus.FAILED, message, retryable=False)
        return OperationStatus.FAILED


def run_operation(operation_id: int) -> str:
    """Queue entry point: run or resume one operation. Safe to deliver twice."""
    worker = worker_identity()
    if not claim(operation_id, worker):
        current = Operation.objects.filter(pk=operation_id).values_list("status", flat=True)
        logger.info("operation %s not claimed (status %s)", operation_id, list(current))
        return "not claimed"
    operation = Operation.objects.get(pk=operation_id)
    kind = get_kind(operation.kind)
    runner = Runner(operation, kind, worker)
    with Heartbeat(operation_id, worker) as heartbeat:
        runner.heartbeat = heartbeat
        try:
            if operation.attempts > settings.FARM_OPERATION_MAX_ATTEMPTS:
                return runner.give_up_after_attempts()
            if operation.mode == OperationMode.ROLLBACK:
                return runner.rollback()
            return runner.forward()
        except LostClaim:
            processes.kill_owned(worker)
            logger.warning("operation %s: claim lost; stopping", operation_id)
            return "lost claim"


def requeue_stale_operations() -> list[int]:
    """Re-enqueue operations whose worker died, and queued ones whose message was lost.

    Runs every minute. Claiming stays atomic, so an operation enqueued twice
    still runs once.
    """
    lease = settings.FARM_OPERATION_LEASE_SECONDS
    stale = list(Operation.objects.stale(lease_seconds=lease).values_list("pk", flat=True))
    # A queued operation's message is redelivered by the ORM broker within
    # Q_RETRY; one still queued after that was lost (a broker outage at
    # enqueue time, or the Redis broker, which keeps no receipts).
    forgotten_before = timezone.now() - timedelta(seconds=max(settings.Q_RETRY, 600))
    forgotten = list(
        Operation.objects.filter(
            Q(enqueued_at__lt=forgotten_before) | Q(enqueued_at__isnull=True),
            status=OperationStatus.QUEUED,
            created_at__lt=forgotten_before,
        ).values_list("pk", flat=True)
    )
    for operation_id in [*stale, *forgotten]:
        logger.warning("re-enqueueing operation %s (worker gone or message lost)", operation_id)
        enqueue(operation_id)
    return [*stale, *forgotten]
