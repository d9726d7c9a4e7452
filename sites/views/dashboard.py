"""The dashboard: a tenant's (or the farm's) sites, backups, alerts and operations
at a glance. It combines every app's rows, so it lives in the top layer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from backups.models import Backup, BackupStatus
from farm.http import HtmxHttpRequest
from farm.models import Operation
from farm.models.operations import UNFINISHED
from monitoring.models import Alert
from nodes.models import Node, NodeStatus
from sites.models import LIVE_STATUSES, Site


@login_required
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    # Every status counted and the deleted dropped here: given the live statuses,
    # SQLite walks the status index over the whole farm's sites even for an owner's few.
    counted = Site.objects.for_user(user).values_list("status").annotate(n=Count("id"))
    by_status = {s: n for s, n in counted.values_list("status", "n") if s in LIVE_STATUSES}
    since = timezone.now() - timedelta(hours=24)
    backups = Backup.objects.for_user(user).filter(created_at__gte=since)
    backup_counts = backups.aggregate(
        succeeded=Count("id", filter=Q(status=BackupStatus.SUCCEEDED)),
        failed=Count("id", filter=Q(status=BackupStatus.FAILED)),
    )
    operations = Operation.objects.for_user(user)
    context: dict[str, Any] = {
        "site_total": sum(by_status.values()),
        "sites_by_status": sorted(by_status.items()),
        "backups_ok_24h": backup_counts["succeeded"],
        "backups_failed_24h": backup_counts["failed"],
        "alerts_firing": Alert.objects.for_user(user).firing().count(),
        "operations_running": operations.filter(status__in=UNFINISHED).count(),
        "recent_operations": operations.select_related("actor")[:10],
    }
    if user.is_staff:
        nodes = Node.objects.exclude(status=NodeStatus.GONE)
        context["nodes_total"] = nodes.count()
        context["nodes_ready"] = nodes.filter(status=NodeStatus.READY).count()
    return TemplateResponse(request, "farm/dashboard.html", context)
