"""Changes made in the Django admin are audited like any other change a person makes.

Admins bulk-edit in the changelist (list_editable) and delete with actions; the
admin reports every one of those through log_addition/log_change/log_deletions,
so one mixin catches them all.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.contrib import admin
from django.db import models
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from farm import audit


def _message(message: Any) -> Any:
    if isinstance(message, str):
        try:
            return json.loads(message) if message.startswith("[") else message
        except ValueError:
            return message
    return message


class AuditedAdmin[M: models.Model](admin.ModelAdmin[M]):
    # A filtered changelist counts its rows once, not the whole table a second time.
    show_full_result_count = False

    def log_addition(self, request: HttpRequest, obj: M, message: Any) -> Any:
        audit.record(
            f"admin.add.{obj._meta.model_name}",
            actor=request.user,  # type: ignore[arg-type]
            target=obj,
            request=request,
            data={"change": _message(message)},
        )
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: M, message: Any) -> Any:
        audit.record(
            f"admin.change.{obj._meta.model_name}",
            actor=request.user,  # type: ignore[arg-type]
            target=obj,
            request=request,
            data={"change": _message(message)},
        )
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            audit.record(
                f"admin.delete.{obj._meta.model_name}",
                actor=request.user,  # type: ignore[arg-type]
                target=obj,
                request=request,
            )
        return super().log_deletions(request, queryset)


class IndexedSearch[M: models.Model](AuditedAdmin[M]):
    """A changelist search that an index serves, for tables of 100,000s of rows.

    The admin's own search matches ``LIKE %q%`` on every row, through a join for a
    related field (``site__domain``), in the count and again in the page. Here the
    related rows are found first, in their small table (``related_search``: the foreign
    key and the related column, matched anywhere), and the big table is filtered by its
    indexed foreign key; ``prefix_search`` columns match from their start, as a range
    their index serves (snapshot ids).
    """

    related_search: ClassVar[tuple[str, str] | None] = None
    prefix_search: ClassVar[tuple[str, ...]] = ()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[M], search_term: str
    ) -> tuple[QuerySet[M], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q()
        for column in self.prefix_search:
            match |= Q(**{f"{column}__gte": term, f"{column}__lt": term + "\uffff"})
        if self.related_search:
            key, column = self.related_search
            related = self.model._meta.get_field(key).related_model
            assert related is not None and not isinstance(related, str)
            found = related._default_manager.filter(**{f"{column}__contains": term.lower()})
            match |= Q(**{f"{key}__in": found.values("pk")})
        return queryset.filter(match), False
