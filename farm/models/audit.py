"""Every state change made by a person leaves an AuditEvent."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from farm.models.tenancy import TenantScopedQuerySet


class AuditEventQuerySet(TenantScopedQuerySet):
    tenant_path = "tenant"

    def for_user(self, user: Any) -> AuditEventQuerySet:
        # Cluster-level events (no tenant) are for operators only, which the
        # tenant filter already gives: a NULL tenant never matches a membership.
        return super().for_user(user)


class AuditEvent(models.Model):
    """Who did what to which object, when, from where. Never edited."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    actor_email = models.CharField(
        max_length=254, blank=True, help_text="Kept when the user is deleted."
    )
    action = models.CharField(max_length=80, db_index=True)
    tenant = models.ForeignKey(
        "farm.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_email or 'system'} {self.action}"
