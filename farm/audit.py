"""Record who changed what. Services call ``record`` for every change a person makes."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from farm.client_ip import client_ip
from farm.models import AuditEvent, Tenant, User


def record(
    action: str,
    *,
    actor: User | None,
    target: models.Model | None = None,
    tenant: Tenant | None = None,
    data: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEvent:
    if tenant is None and target is not None:
        tenant = getattr(target, "tenant", None)
    return AuditEvent.objects.create(
        action=action,
        actor=actor if actor is not None and actor.pk else None,
        actor_email=actor.email if actor is not None and actor.pk else "",
        tenant=tenant,
        target_type=target._meta.model_name or "" if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:255] if target is not None else "",
        data=data or {},
        ip_address=client_ip(request),
    )
