"""Queue entry points for sites."""

from __future__ import annotations

from nodes import edge
from sites.models import Site, SiteStatus
from sites.reconcile import run_reconcile


def reconcile_sites() -> str:
    report = run_reconcile()
    return report.error or f"{report.drift} drift, {report.orphans} orphans"


def run_wordpress_cron() -> str:
    """Call every active site's wp-cron.php through Traefik (WordPress's page-view cron
    is off: DISABLE_WP_CRON), so scheduled posts and jobs run on time."""
    failed = 0
    domains = list(Site.objects.filter(status=SiteStatus.ACTIVE).values_list("domain", flat=True))
    for domain in domains:
        try:
            edge.get(domain, "/wp-cron.php", timeout=30)
        except edge.EdgeError:
            failed += 1
    return f"{len(domains) - failed} of {len(domains)} sites"
