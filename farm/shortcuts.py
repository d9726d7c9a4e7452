"""Scoped lookups: an object outside the user's tenants is a 404, not a 403."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.http import Http404

from farm.models import User


def get_for_user[M: models.Model](model: type[M], user: User | AnonymousUser, **lookup: Any) -> M:
    manager: Any = model._default_manager
    try:
        obj: M = manager.for_user(user).get(**lookup)
    except model.DoesNotExist:  # type: ignore[attr-defined]
        raise Http404(f"No {model._meta.verbose_name} matches the given query.") from None
    return obj
