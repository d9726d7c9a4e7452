"""Scoped lookups: an object outside the user's tenants is a 404, not a 403."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.http import Http404

from farm.models import User


def get_for_user[M: models.Model](
    model: type[M],
    user: User | AnonymousUser,
    *,
    select_related: tuple[str, ...] = (),
    **lookup: Any,
) -> M:
    """``model``'s row matching ``lookup`` among ``user``'s, with the ``select_related``
    rows the page shows joined in (one query for the row and them)."""
    manager: Any = model._default_manager
    rows = manager.for_user(user)
    if select_related:  # select_related() with no fields would join every foreign key
        rows = rows.select_related(*select_related)
    try:
        obj: M = rows.get(**lookup)
    except model.DoesNotExist:  # type: ignore[attr-defined]
        raise Http404(f"No {model._meta.verbose_name} matches the given query.") from None
    return obj
