"""What an operation is made of: its kind (declared steps, hooks, who may restart it),
its steps (idempotent ``run``, optional ``undo``) and the context a step runs in."""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NoReturn

from django.conf import settings
from django.utils import timezone

from farm.errors import OperationStateError
from farm.models import Operation, OperationStatus, OperationStep
from farm.operations.writes import append_step_log
from farm.redaction import mask_swarm_secrets

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
        logger.info(
            "operation %s step %s: %s",
            self.operation.pk,
            self.step.name,
            mask_swarm_secrets(message),
        )
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
