"""Template helpers for operation pages: what the viewer may see and do.

Permissions are decided in farm.services and text is redacted in
farm.redaction; these only hand the results to the templates.
"""

from __future__ import annotations

from django import template
from django.contrib.auth.models import AnonymousUser

from farm import redaction, services
from farm.models import Operation, User

register = template.Library()


@register.filter
def for_viewer(text: str, viewer: User | AnonymousUser | None) -> str:
    """``{{ step.log|for_viewer:request.user }}``: the text as this viewer may read it."""
    return redaction.redact_for(viewer, text or "")


@register.filter
def person_for(person: User | None, viewer: User | AnonymousUser | None) -> str:
    """``{{ operation.actor|person_for:request.user }}``: who acted, as this viewer may know."""
    return redaction.person_for(viewer, person)


@register.simple_tag
def operation_actions(
    operation: Operation, viewer: User | AnonymousUser
) -> services.OperationActions:
    """``{% operation_actions operation request.user as actions %}``."""
    return services.actions_for(operation, viewer)
