"""Queue entry points for monitoring."""

from __future__ import annotations

from monitoring.alertmanager import AlertmanagerUnreachable, sync_from_alertmanager
from monitoring.alerts import raise_alert, resolve_alert
from monitoring.node_alerts import resolve_recovered_nodes

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


def resolve_node_down_alerts() -> str:
    """Every minute: a NodeDown alert ends once its node is ready again (the watcher
    resolves it at once; this is the backstop when the watcher was not running)."""
    return f"{resolve_recovered_nodes()} NodeDown resolved"
