"""State changes people make to operations: retry, roll back, cancel."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from farm import audit
from farm.errors import OperationStateError
from farm.models import Operation, User
from farm.models.tenancy import can_change_tenant
from farm.operations import cancel_operation, retry_operation, roll_back_operation


def _authorise(operation: Operation, actor: User) -> None:
    if operation.tenant_id is None and not actor.is_staff:
        raise PermissionDenied("Only operators act on cluster operations.")
    if not can_change_tenant(actor, operation.tenant_id):
        raise PermissionDenied("Your role in this tenant can look but not change.")


def retry(*, operation: Operation, actor: User) -> Operation:
    _authorise(operation, actor)
    operation = retry_operation(operation, note=f"retry by {actor.email}")
    audit.record(
        "operation.retry",
        actor=actor,
        target=operation,
        tenant=operation.tenant,
        data={"kind": operation.kind},
    )
    return operation


def roll_back(*, operation: Operation, actor: User) -> Operation:
    _authorise(operation, actor)
    operation = roll_back_operation(operation, note=f"roll back by {actor.email}")
    audit.record(
        "operation.roll_back",
        actor=actor,
        target=operation,
        tenant=operation.tenant,
        data={"kind": operation.kind},
    )
    return operation


def cancel(*, operation: Operation, actor: User) -> Operation:
    _authorise(operation, actor)
    if not operation.can_cancel():
        raise OperationStateError("This operation cannot be cancelled now.")
    operation = cancel_operation(operation)
    audit.record(
        "operation.cancel",
        actor=actor,
        target=operation,
        tenant=operation.tenant,
        data={"kind": operation.kind},
    )
    return operation
