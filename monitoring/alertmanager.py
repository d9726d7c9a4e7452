"""Alertmanager's alerts become Alert rows (one per firing): pushed by its webhook
and pulled from its API every minute.

Which site an alert is about is the sites app's to say, from the alert's labels
(``monitoring.site_lookup``: ``SitesConfig.ready()`` registers the lookup)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from farm.errors import FarmError
from monitoring.credentials import monitoring_auth
from monitoring.models import Alert, AlertSeverity, AlertStatus
from monitoring.site_lookup import site_for

_ZERO_TIME = "0001-01-01T00:00:00Z"


def _time(raw: str | None) -> datetime | None:
    if not raw or raw.startswith("0001-01-01"):
        return None
    return parse_datetime(raw)


def ingest(payload: dict[str, Any]) -> int:
    """Apply one Alertmanager webhook payload (version 4); returns alerts touched."""
    touched = 0
    now = timezone.now()
    with transaction.atomic():
        for item in payload.get("alerts", []):
            labels: dict[str, str] = item.get("labels", {})
            annotations: dict[str, str] = item.get("annotations", {})
            fingerprint = (
                item.get("fingerprint")
                or hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:32]
            )
            started = _time(item.get("startsAt")) or now
            site_id, tenant_id = site_for(labels)
            severity = labels.get("severity", "warning")
            alert, _ = Alert.objects.update_or_create(
                fingerprint=fingerprint,
                started_at=started,
                defaults={
                    "source": "alertmanager",
                    "name": labels.get("alertname", "alert")[:120],
                    "severity": severity if severity in AlertSeverity.values else "warning",
                    "summary": (annotations.get("summary") or labels.get("alertname", ""))[:255],
                    "description": annotations.get("description", ""),
                    "labels": labels,
                    "site_id": site_id,
                    "tenant_id": tenant_id,
                    "last_seen_at": now,
                },
            )
            if item.get("status") == "resolved":
                alert.status = AlertStatus.RESOLVED
                alert.resolved_at = _time(item.get("endsAt")) or now
            else:
                alert.status = AlertStatus.FIRING
                alert.resolved_at = None
            alert.save(update_fields=["status", "resolved_at"])
            touched += 1
    return touched


class AlertmanagerUnreachable(FarmError):
    pass


def _active_alerts() -> list[dict[str, Any]]:
    try:
        response = requests.get(
            # Silenced and inhibited alerts are included: muted is not resolved.
            f"{settings.FARM_ALERTMANAGER_URL.rstrip('/')}/api/v2/alerts",
            auth=monitoring_auth(),
            timeout=10,
        )
        if response.status_code == 401:
            raise AlertmanagerUnreachable(
                "Alertmanager refused the panel's credentials (401); check "
                "FARM_MONITORING_USER/FARM_MONITORING_PASSWORD or run manage.py farm_up.",
                retryable=False,
            )
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise AlertmanagerUnreachable(
            f"Alertmanager did not answer: {exc}", retryable=True
        ) from exc
    if not isinstance(body, list):
        raise AlertmanagerUnreachable("Alertmanager's answer is not a list of alerts")
    return body


def sync_from_alertmanager() -> tuple[int, int]:
    """Read the alerts firing now from Alertmanager's API and make the panel agree.

    The webhook pushes changes as they happen; this pull, every minute, is what
    makes the panel right when a webhook is lost or cannot reach the panel (a
    panel bound to 127.0.0.1 on a one-machine farm, say). Returns (firing
    alerts applied, alerts resolved). When Alertmanager does not answer, nothing
    is resolved: an unreachable Alertmanager is not a quiet farm.
    """
    active = _active_alerts()
    payload = {
        "alerts": [
            {
                "status": "firing",
                "fingerprint": item.get("fingerprint"),
                "labels": item.get("labels", {}),
                "annotations": item.get("annotations", {}),
                "startsAt": item.get("startsAt"),
            }
            for item in active
        ]
    }
    applied = ingest(payload)
    live = {item.get("fingerprint") for item in active}
    gone = Alert.objects.filter(source="alertmanager", status=AlertStatus.FIRING).exclude(
        fingerprint__in=[f for f in live if f]
    )
    resolved = gone.update(status=AlertStatus.RESOLVED, resolved_at=timezone.now())
    return applied, resolved
