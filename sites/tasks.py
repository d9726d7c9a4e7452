"""Queue entry points for sites: ids in, nothing clever."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from backups import policy
from farm.errors import OperationConflict
from nodes import edge
from sites import service_states, services
from sites.models import Site, SiteStatus


def reconcile_sites() -> str:
    """Start the ``site.reconcile`` operation (none while one is still unfinished)."""
    try:
        operation = services.start_reconcile(actor=None)
    except OperationConflict as exc:
        return exc.message
    return f"operation {operation.pk}"


def record_service_states() -> str:
    """What the Swarm says about every site's services, for the site pages to read."""
    return service_states.record_all()


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


def backup_tick(now: datetime | None = None) -> int:
    """Claim every due backup; enqueue one task to start them. Constant queries."""
    from django_q.tasks import async_task  # looked up when it runs: tests replace it

    now = now or timezone.now()
    claimed = services.claim_due_backups(now)
    if claimed or policy.left_behind(now).exists():
        async_task("sites.tasks.start_claimed_backups", group="backups")
    return claimed


def start_claimed_backups() -> str:
    return str(services.start_claimed_backups())


def check_rpo() -> str:
    return str(services.check_rpo())


def run_drills() -> str:
    return str(services.run_drills(settings.FARM_DRILL_SAMPLE))
