from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


def operator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged in and staff; a tenant user gets 403 (the page exists, it is not theirs)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("Only operators can see this page.")
        return view(request, *args, **kwargs)

    return wrapper
