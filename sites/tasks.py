"""Queue entry points for sites."""

from __future__ import annotations

from sites.reconcile import run_reconcile


def reconcile_sites() -> str:
    report = run_reconcile()
    return report.error or f"{report.drift} drift, {report.orphans} orphans"
