"""Alerts the panel raises itself (a failed backup, a breached RPO) and resolves.

One firing Alert per fingerprint: raising again refreshes it; resolving closes
it. Alertmanager's alerts come in through monitoring.alertmanager instead.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from monitoring.models import Alert, AlertSeverity, AlertStatus
from sites.models import Site


def raise_alert(
    *,
    fingerprint: str,
    name: str,
    summary: str,
    severity: str = "warning",
    description: str = "",
    site: Site | None = None,
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
        alert.site = site
        alert.tenant = site.tenant if site is not None else None
        alert.labels = labels or {}
        alert.last_seen_at = now
        alert.save()
    return alert


def resolve_alert(fingerprint: str) -> int:
    return Alert.objects.filter(fingerprint=fingerprint, status=AlertStatus.FIRING).update(
        status=AlertStatus.RESOLVED, resolved_at=timezone.now()
    )
