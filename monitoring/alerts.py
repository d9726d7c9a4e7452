"""Alerts the panel raises itself (a failed backup, a breached RPO) and resolves.

One firing Alert per fingerprint: raising again refreshes it; resolving closes
it. Alertmanager's alerts come in through monitoring.alertmanager instead.
An alert about a site names it by id (``site_id``, ``tenant_id``): monitoring
knows nothing of sites but their rows' keys.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from monitoring.models import Alert, AlertSeverity, AlertStatus


def raise_alert(
    *,
    fingerprint: str,
    name: str,
    summary: str,
    severity: str = "warning",
    description: str = "",
    site_id: int | None = None,
    tenant_id: int | None = None,
    node_id: int | None = None,
    source: str = "panel",
    labels: dict[str, str] | None = None,
) -> Alert:
    now = timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update()
            .filter(fingerprint=fingerprint, status=AlertStatus.FIRING)
            .first()
        )
        if alert is None:
            alert = Alert(fingerprint=fingerprint, started_at=now, status=AlertStatus.FIRING)
        alert.name = name[:120]
        alert.summary = summary[:255]
        alert.description = description
        alert.severity = severity if severity in AlertSeverity.values else "warning"
        alert.source = source
        alert.site_id = site_id
        alert.tenant_id = tenant_id
        alert.node_id = node_id
        alert.labels = labels or {}
        alert.last_seen_at = now
        alert.save()
    return alert


def resolve_alert(fingerprint: str) -> int:
    return Alert.objects.filter(fingerprint=fingerprint, status=AlertStatus.FIRING).update(
        status=AlertStatus.RESOLVED, resolved_at=timezone.now()
    )
