"""The Operation engine: declared steps per kind, and how an operation starts.

An operation kind declares an ordered list of steps. Each step's ``run`` must
be idempotent (look at the real system first, then change it) and may have an
``undo`` that is idempotent too. ``farm.runner`` executes them. This package is
the engine's public API: the declarations (``kinds``), the guarded writes of a
running worker (``writes``) and the transitions people trigger: start, retry
from the failed step, roll back, cancel (``transitions``).

    @register_kind
    class ProvisionSite(OperationKind):
        name = "site.provision"
        target_type = "site"
        steps = (Allocate(), CreateDatabase(), ...)
"""

from farm.operations.kinds import (
    LostClaim,
    OperationCancelled,
    OperationKind,
    Step,
    StepContext,
    StepSkipped,
    get_kind,
    load_extra_kind_modules,
    register_kind,
    registered_kinds,
)
from farm.operations.transitions import (
    cancel_operation,
    enqueue,
    retry_operation,
    roll_back_operation,
    start_operation,
)
from farm.operations.writes import append_step_log, write_if_owner

__all__ = [
    "LostClaim",
    "OperationCancelled",
    "OperationKind",
    "Step",
    "StepContext",
    "StepSkipped",
    "append_step_log",
    "cancel_operation",
    "enqueue",
    "get_kind",
    "load_extra_kind_modules",
    "register_kind",
    "registered_kinds",
    "retry_operation",
    "roll_back_operation",
    "start_operation",
    "write_if_owner",
]
