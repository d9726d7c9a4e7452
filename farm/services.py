"""State changes people make to operations: retry, roll back, cancel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from farm import audit
from farm.errors import OperationStateError
from farm.models import Operation, User
from farm.operations import (
    cancel_operation,
    registered_kinds,
    retry_operation,
    roll_back_operation,
)
from farm.permissions import change_refusal


def _refusal(operation: Operation, actor: User | AnonymousUser) -> str:
    """Why ``actor`` may not retry, roll back or cancel ``operation`` ("" when they may)."""
    if actor.is_staff:
        return ""
    if operation.tenant_id is None:
        return "Only operators act on cluster operations."
    kind = registered_kinds().get(operation.kind)
    if kind is None or kind.requires_operator(operation):
        return f"Only operators retry, roll back or cancel a {operation.kind}."
    return change_refusal(actor, operation.tenant_id)


def _authorise(operation: Operation, actor: User) -> None:
    refusal = _refusal(operation, actor)
    if refusal:
        raise PermissionDenied(refusal)


@dataclass(frozen=True)
class OperationActions:
    """What a person may do with an operation now, and why not, for its page."""

    retry: bool
    roll_back: bool
    cancel: bool
    why_not: str = ""


def actions_for(operation: Operation, user: User | AnonymousUser) -> OperationActions:
    """The buttons an operation's page shows to ``user`` (the services check again)."""
    if not (operation.is_restartable or operation.can_cancel()):
        return OperationActions(retry=False, roll_back=False, cancel=False)
    refusal = _refusal(operation, user) if user.is_authenticated else "Log in first."
    if refusal:
        return OperationActions(retry=False, roll_back=False, cancel=False, why_not=refusal)
    if not operation.is_restartable:
        return OperationActions(retry=False, roll_back=False, cancel=True)
    later = operation.superseded_by()
    if later is not None:
        return OperationActions(
            retry=False, roll_back=False, cancel=False, why_not=operation.superseded_reason(later)
        )
    kind = registered_kinds().get(operation.kind)
    return OperationActions(retry=True, roll_back=kind is None or kind.reversible, cancel=False)


def _change(
    operation: Operation, actor: User, action: str, transition: Callable[[Operation], Operation]
) -> Operation:
    """Authorise, make the transition, audit it as ``operation.<action>``."""
    _authorise(operation, actor)
    operation = transition(operation)
    audit.record(
        f"operation.{action}",
        actor=actor,
        target=operation,
        tenant=operation.tenant,
        data={"kind": operation.kind},
    )
    return operation


def retry(*, operation: Operation, actor: User) -> Operation:
    return _change(
        operation, actor, "retry", lambda op: retry_operation(op, note=f"retry by {actor.email}")
    )


def roll_back(*, operation: Operation, actor: User) -> Operation:
    return _change(
        operation,
        actor,
        "roll_back",
        lambda op: roll_back_operation(op, note=f"roll back by {actor.email}"),
    )


def _cancel(operation: Operation) -> Operation:
    if not operation.can_cancel():
        raise OperationStateError("This operation cannot be cancelled now.")
    return cancel_operation(operation)


def cancel(*, operation: Operation, actor: User) -> Operation:
    return _change(operation, actor, "cancel", _cancel)
