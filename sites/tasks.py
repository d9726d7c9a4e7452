"""Queue entry points for sites."""

from __future__ import annotations

from sites.reconcile import run_reconcile


def reconcile_sites() -> str:
    report = run_reconcile()
    return report.error or f"{report.drift} drift, {report.orphans} orphans"


def run_wordpress_cron() -> str:
    """Call every active site's wp-cron.php through Traefik (WordPress's page-view cron
    is off: DISABLE_WP_CRON), so scheduled posts and jobs run on time."""
    import requests
    from django.conf import settings

    from sites.models import Site, SiteStatus

    failed = 0
    domains = list(Site.objects.filter(status=SiteStatus.ACTIVE).values_list("domain", flat=True))
    for domain in domains:
        try:
            requests.get(
                f"{settings.FARM_EDGE_URL}/wp-cron.php",
                headers={"Host": domain},
                timeout=30,
                allow_redirects=False,
            )
        except requests.RequestException:
            failed += 1
    return f"{len(domains) - failed} of {len(domains)} sites"
