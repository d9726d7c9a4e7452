"""The request types views see (Django's, plus django-htmx's ``request.htmx``), and how
an action's outcome is told to the person who asked for it."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from farm.errors import FarmError
from farm.models import User


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class AuthedRequest(HtmxHttpRequest):
    """A request that passed @login_required: ``user`` is a real User."""

    user: User


def report_outcome(request: HttpRequest, action: Callable[[], object], *, done: str) -> bool:
    """Run the service call of a POST that changes one thing and tell the person how it
    went in a message: ``done`` when it worked, the FarmError's words when it did not.
    True when it worked. The view redirects afterwards (POST, redirect, GET).
    PermissionDenied is not caught: the service's refusal is a 403."""
    try:
        action()
    except FarmError as exc:
        messages.error(request, exc.message)
        return False
    messages.success(request, done)
    return True
