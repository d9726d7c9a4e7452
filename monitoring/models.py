"""Alerts from Alertmanager and from the panel's own checks (backups, RPO)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from farm.models import TenantScopedQuerySet


class AlertSeverity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class AlertQuerySet(TenantScopedQuerySet):
    tenant_path = "tenant"

    def firing(self) -> AlertQuerySet:
        return self.filter(status=AlertStatus.FIRING)


class Alert(models.Model):
    Severity = AlertSeverity
    Status = AlertStatus

    fingerprint = models.CharField(
        max_length=128, db_index=True, help_text="Same problem, same fingerprint: one row."
    )
    source = models.CharField(max_length=30, default="panel", help_text="alertmanager, backup, rpo")
    name = models.CharField(max_length=120)
    severity = models.CharField(max_length=10, choices=AlertSeverity.choices, default="warning")
    status = models.CharField(max_length=10, choices=AlertStatus.choices, default="firing")
    summary = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    labels = models.JSONField(default=dict, blank=True)
    tenant = models.ForeignKey(
        "farm.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    site = models.ForeignKey(
        "sites.Site", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    node = models.ForeignKey(
        "nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    started_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField()
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint", "started_at"], name="one_alert_per_firing"
            )
        ]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.summary}"
