"""The Operation engine: declared steps per kind, and how an operation starts.

An operation kind declares an ordered list of steps. Each step's ``run`` must
be idempotent (look at the real system first, then change it) and may have an
``undo`` that is idempotent too. ``farm.runner`` executes them; this module
holds the declarations and the database transitions that people trigger:
start, retry from the failed step, roll back, cancel.

    @register_kind
    class ProvisionSite(OperationKind):
        name = "site.provision"
        target_type = "site"
        steps = (Allocate(), CreateDatabase(), ...)
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from farm.errors import OperationConflict, OperationStateError
from farm.models import Operation, OperationStatus, OperationStep, StepStatus, Tenant
from farm.models.operations import UNFINISHED, OperationMode

if TYPE_CHECKING:
    from farm.models import User

logger = logging.getLogger(__name__)


class StepSkipped(Exception):
    """Raised by a step that decides it has nothing to do (shown as Skipped)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OperationCancelled(Exception):
    """Raised inside a step when the operation was asked to stop."""


class LostClaim(Exception):
    """This worker no longer owns the operation: another worker took it over, or
    its heartbeat could not be written for most of the lease. It must stop and
    write nothing more; the operation's new owner resumes the step."""


class StepContext:
    """What a step sees: its operation, target, params, shared state and a log."""

    def __init__(
        self,
        operation: Operation,
        step: OperationStep,
        kind: OperationKind,
        *,
        worker: str = "",
        claim_lost: Callable[[], bool] | None = None,
        owned_write: Callable[[], None] | None = None,
    ) -> None:
        self.operation = operation
        self.step = step
        self.kind = kind
        # The worker running the step: its writes only land while it still owns
        # the operation (empty outside the runner, e.g. a step called directly).
        self.worker = worker
        self._claim_lost = claim_lost or (lambda: False)
        # Told of every write that proved the claim still held (it refreshes the heartbeat).
        self._owned_write = owned_write or (lambda: None)
        self._target: Any = None

    @property
    def params(self) -> dict[str, Any]:
        return self.operation.params

    @property
    def state(self) -> dict[str, Any]:
        """Results of earlier steps, kept in the database as steps finish."""
        return self.operation.state

    @property
    def target(self) -> Any:
        if self._target is None:
            self._target = self.kind.get_target(self.operation)
        return self._target

    def refresh_target(self) -> Any:
        self._target = None
        return self.target

    def _owner(self) -> tuple[int, str] | None:
        if not self.worker:
            return None
        if self._claim_lost():
            raise LostClaim()
        return (self.operation.pk, self.worker)

    def log(self, message: str) -> None:
        """Append to the step's log; raises LostClaim once another worker owns the operation."""
        logger.info("operation %s step %s: %s", self.operation.pk, self.step.name, message)
        owner = self._owner()
        if not append_step_log(self.step.pk, message, owner=owner):
            raise LostClaim()
        if owner is not None:
            self._owned_write()

    def save_state(self) -> None:
        """Checkpoint ``state`` in the middle of a long step."""
        owner = self._owner()
        if owner is None:
            Operation.objects.filter(pk=self.operation.pk).update(state=self.operation.state)
            return
        owned = Operation.objects.filter(
            pk=owner[0], worker=owner[1], status=OperationStatus.RUNNING
        ).update(state=self.operation.state, heartbeat_at=timezone.now())
        if not owned:
            raise LostClaim()
        self._owned_write()

    def cancel_requested(self) -> bool:
        return bool(
            Operation.objects.filter(pk=self.operation.pk)
            .values_list("cancel_requested", flat=True)
            .first()
        )

    def check_cancelled(self) -> None:
        """Long steps call this in their loops so Cancel takes effect promptly, and so
        a worker that lost its claim stops (LostClaim) instead of racing the new owner."""
        if self.worker and self._claim_lost():
            raise LostClaim()
        if self.cancel_requested():
            raise OperationCancelled()

    def skip(self, reason: str) -> NoReturn:
        raise StepSkipped(reason)


class Step(ABC):
    """One idempotent piece of an operation. Subclasses implement ``run``."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""

    @abstractmethod
    def run(self, ctx: StepContext) -> None:
        """Do the step's work; check the real system first, so running it twice is safe."""

    def undo(self, ctx: StepContext) -> None:
        """Reverse what ``run`` did; a no-op for steps that change nothing."""
        ctx.log("Nothing to undo.")

    @property
    def has_undo(self) -> bool:
        return type(self).undo is not Step.undo


class OperationKind:
    """A declared kind of operation: its name, its target type and its steps."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    target_type: ClassVar[str] = ""
    steps: ClassVar[Sequence[Step]] = ()
    # False for kinds whose undo would destroy what existed before they ran (a
    # repair reuses the provision steps, whose undo drops the database).
    reversible: ClassVar[bool] = True
    # True for kinds only operators may retry, roll back or cancel (a repair,
    # the cluster's own work); ``requires_operator`` may also look at params.
    operator_only: ClassVar[bool] = False

    def get_target(self, operation: Operation) -> Any:
        """Load the object the operation acts on (None when there is none)."""
        return None

    def requires_operator(self, operation: Operation) -> bool:
        """Whether only an operator may retry, roll back or cancel this operation.

        Operations of no tenant (the cluster's) always do. Kinds whose params
        make one operator-only (a delete that purges) override this.
        """
        return self.operator_only or operation.tenant_id is None

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"{self.name} has no step {name!r}")

    # Hooks the runner calls when the operation ends; they update the target's
    # own status (e.g. a site becomes active). Keep them to database writes.
    def on_succeeded(self, operation: Operation) -> None:
        pass

    def on_failed(self, operation: Operation) -> None:
        pass

    def on_cancelled(self, operation: Operation) -> None:
        pass

    def on_rolled_back(self, operation: Operation) -> None:
        pass


_registry: dict[str, OperationKind] = {}


def register_kind[K: type[OperationKind]](cls: K) -> K:
    if not cls.name or not cls.target_type:
        raise ValueError(f"{cls.__name__} needs a name and a target_type")
    names = [step.name for step in cls.steps]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"{cls.__name__} needs unique, non-empty step names: {names}")
    _registry[cls.name] = cls()
    return cls


def get_kind(name: str) -> OperationKind:
    try:
        return _registry[name]
    except KeyError:
        raise OperationStateError(f"Unknown operation kind {name!r}.") from None


def registered_kinds() -> dict[str, OperationKind]:
    return dict(_registry)


def load_extra_kind_modules() -> None:
    for module in settings.FARM_OPERATION_MODULES:
        importlib.import_module(module)


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
    that worker owns the operation; returns False when it does not."""
    stamp = timezone.now().strftime("%H:%M:%S")
    lines = "".join(f"{stamp} {line}\n" for line in (message.splitlines() or [""]))

    def write() -> None:
        OperationStep.objects.filter(pk=step_id).update(
            log=Concat(F("log"), Value(lines), output_field=models.TextField())
        )

    if owner is None:
        write()
        return True
    return write_if_owner(owner[0], owner[1], write)


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
