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


class StepContext:
    """What a step sees: its operation, target, params, shared state and a log."""

    def __init__(self, operation: Operation, step: OperationStep, kind: OperationKind) -> None:
        self.operation = operation
        self.step = step
        self.kind = kind
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

    def log(self, message: str) -> None:
        append_step_log(self.step.pk, message)
        logger.info("operation %s step %s: %s", self.operation.pk, self.step.name, message)

    def save_state(self) -> None:
        """Checkpoint ``state`` in the middle of a long step."""
        Operation.objects.filter(pk=self.operation.pk).update(state=self.operation.state)

    def cancel_requested(self) -> bool:
        return bool(
            Operation.objects.filter(pk=self.operation.pk)
            .values_list("cancel_requested", flat=True)
            .first()
        )

    def check_cancelled(self) -> None:
        """Long steps call this in their loops so Cancel takes effect promptly."""
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

    def get_target(self, operation: Operation) -> Any:
        """Load the object the operation acts on (None when there is none)."""
        return None

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


def append_step_log(step_id: int, message: str) -> None:
    stamp = timezone.now().strftime("%H:%M:%S")
    lines = "".join(f"{stamp} {line}\n" for line in (message.splitlines() or [""]))
    OperationStep.objects.filter(pk=step_id).update(
        log=Concat(F("log"), Value(lines), output_field=models.TextField())
    )


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
    """Put a finished operation back in the queue, taking the target's lock again."""
    try:
        with transaction.atomic():
            updated = Operation.objects.filter(
                pk=operation.pk, status__in=(OperationStatus.FAILED, OperationStatus.CANCELLED)
            ).update(
                status=OperationStatus.QUEUED,
                mode=mode,
                lock_key=operation.lock_name or operation.target_key,
                error="",
                cancel_requested=False,
                finished_at=None,
                heartbeat_at=None,
                worker="",
            )
            if not updated:
                raise OperationStateError(
                    f"Operation #{operation.pk} is {operation.get_status_display().lower()} "
                    "and cannot be restarted."
                )
            if mode == OperationMode.FORWARD:
                # Resume from the step that failed (or was interrupted).
                operation.steps.filter(status__in=(StepStatus.FAILED, StepStatus.RUNNING)).update(
                    status=StepStatus.PENDING, error=""
                )
            for step in operation.steps.exclude(status=StepStatus.PENDING):
                append_step_log(step.pk, f"--- {note} ---")
    except IntegrityError as exc:
        raise _conflict_for(operation.lock_name or operation.target_key) from exc
    enqueue(operation.pk)
    operation.refresh_from_db()
    return operation


def retry_operation(operation: Operation, *, note: str = "retry") -> Operation:
    operation.refresh_from_db()
    if not operation.can_retry():
        raise OperationStateError("Only a failed or cancelled operation can be retried.")
    return _reopen(operation, mode=OperationMode.FORWARD, note=note)


def roll_back_operation(operation: Operation, *, note: str = "roll back") -> Operation:
    operation.refresh_from_db()
    if not get_kind(operation.kind).reversible:
        raise OperationStateError(
            f"A {operation.kind} cannot be rolled back: undoing it would remove what the "
            "site had before. Retry it, or restore from a backup."
        )
    if not operation.can_roll_back():
        raise OperationStateError("Only a failed or cancelled operation can be rolled back.")
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
