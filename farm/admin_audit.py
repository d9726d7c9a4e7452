"""Changes made in the Django admin are audited like any other change a person makes.

Admins bulk-edit in the changelist (list_editable) and delete with actions; the
admin reports every one of those through log_addition/log_change/log_deletions,
so one mixin catches them all.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db import models
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
