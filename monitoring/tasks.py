"""Queue entry points for monitoring."""

from __future__ import annotations

from monitoring.alertmanager import AlertmanagerUnreachable, sync_from_alertmanager
from monitoring.alerts import raise_alert, resolve_alert

UNREACHABLE = "panel:alertmanager-unreachable"


def sync_alerts() -> str:
    """Every minute: the panel's alerts agree with Alertmanager's, or an alert says
    why they cannot."""
    try:
        applied, resolved = sync_from_alertmanager()
    except AlertmanagerUnreachable as exc:
        raise_alert(
            fingerprint=UNREACHABLE,
            name="AlertmanagerUnreachable",
            summary="The panel cannot read Alertmanager: site-down alerts may be missing",
            description=str(exc),
        )
        return str(exc)
    resolve_alert(UNREACHABLE)
    return f"{applied} firing, {resolved} resolved"
