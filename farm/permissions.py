"""Who may change what, written once. Every service that changes a tenant's things calls
``require_change`` before it does; operator-only changes call ``require_operator``.
Views do not check again what the service they call checks: the service raises
PermissionDenied and Django answers 403. (A page that only shows a change form, such as
the delete page, checks on its own: no service runs until the form is sent.)"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from farm.models import User
from farm.models.tenancy import can_change_tenant

CHANGE_REFUSED = "Only the tenant's owners and operators can change this; your role can look."


def change_refusal(user: User | AnonymousUser, tenant_id: int | None) -> str:
    """Why ``user`` may not change the things of tenant ``tenant_id`` ("" when they may)."""
    return "" if can_change_tenant(user, tenant_id) else CHANGE_REFUSED


def require_change(user: User | AnonymousUser, tenant_id: int | None) -> None:
    """Owners and operators may change a tenant's things; members may look: 403 for them."""
    refusal = change_refusal(user, tenant_id)
    if refusal:
        raise PermissionDenied(refusal)


def require_operator(user: User | AnonymousUser, refusal: str) -> None:
    """Operators only; ``refusal`` says what is theirs to do ("Only operators ...")."""
    if not (user.is_authenticated and user.is_active and user.is_staff):
        raise PermissionDenied(refusal)
