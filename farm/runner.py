"""Runs operations: claim, execute steps in order, record everything as it goes.

A worker claims an operation with one conditional UPDATE: it succeeds only if
the operation is queued, or running with a heartbeat older than the lease (its
worker died). While it works, a heartbeat thread keeps the claim fresh. Steps
already done are never run again; the step that was running when a worker
died is run again (steps are idempotent). Every transition of a step or an
operation is a write guarded by ``worker=<this worker>``, so a worker that
lost its claim notices and stops instead of racing the new owner.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from datetime import timedelta
from types import TracebackType

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from farm.errors import FarmError
from farm.models import Operation, OperationStatus, OperationStep, StepStatus
from farm.models.operations import OperationMode
from farm.operations import (
    OperationCancelled,
    OperationKind,
    StepContext,
    StepSkipped,
    append_step_log,
    enqueue,
    get_kind,
)

logger = logging.getLogger(__name__)


class LostClaim(Exception):
    """Another worker took the operation over (this one was presumed dead)."""


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(operation_id: int, worker: str) -> bool:
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.FARM_OPERATION_LEASE_SECONDS)
    claimable = Q(status=OperationStatus.QUEUED) | Q(
        status=OperationStatus.RUNNING, heartbeat_at__lt=stale_before
    )
    return bool(
        Operation.objects.filter(claimable, pk=operation_id).update(
            status=OperationStatus.RUNNING,
            worker=worker,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
        )
    )


class Heartbeat:
    """Keeps ``heartbeat_at`` fresh from a thread while a step runs."""

    def __init__(self, operation_id: int, worker: str) -> None:
        self.operation_id = operation_id
        self.worker = worker
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{operation_id}")
        self._thread.daemon = True

    def _beat(self) -> None:
        interval = settings.FARM_OPERATION_HEARTBEAT_SECONDS
        try:
            while not self._stop.wait(interval):
                owned = Operation.objects.filter(
                    pk=self.operation_id, worker=self.worker, status=OperationStatus.RUNNING
                ).update(heartbeat_at=timezone.now())
                if not owned:
                    self.lost.set()
                    return
        except Exception:
            logger.exception("heartbeat for operation %s failed", self.operation_id)
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Runner:
    def __init__(self, operation: Operation, kind: OperationKind, worker: str) -> None:
        self.operation = operation
        self.kind = kind
        self.worker = worker
        self.heartbeat: Heartbeat | None = None

    # -- guarded writes -------------------------------------------------------
    def _owned(self) -> Q:
        return Q(pk=self.operation.pk, worker=self.worker, status=OperationStatus.RUNNING)

    def _touch(self) -> None:
        if self.heartbeat is not None and self.heartbeat.lost.is_set():
            raise LostClaim()
        if not Operation.objects.filter(self._owned()).update(heartbeat_at=timezone.now()):
            raise LostClaim()

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
        for name, value in fields.items():
            setattr(step, name, value)
        OperationStep.objects.filter(pk=step.pk).update(**fields)

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
        ctx = StepContext(self.operation, step, self.kind)
        began = time.monotonic()
        outcome, error, retryable = (
            StepStatus.UNDONE if undo else StepStatus.SUCCEEDED,
            "",
            True,
        )
        try:
            if undo:
                definition.undo(ctx)
            else:
                definition.run(ctx)
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
        Operation.objects.filter(self._owned()).update(state=self.operation.state)
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
                append_step_log(step.pk, "Not started: the operation was cancelled.")
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
            if operation.mode == OperationMode.ROLLBACK:
                return runner.rollback()
            return runner.forward()
        except LostClaim:
            logger.warning("operation %s: claim lost to another worker; stopping", operation_id)
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
