"""Dashboard, operations and the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from backups.models import Backup, BackupStatus
from farm import services
from farm.decorators import operator_required
from farm.errors import FarmError
from farm.http import HtmxHttpRequest
from farm.models import AuditEvent, Operation
from farm.models.operations import UNFINISHED
from farm.shortcuts import get_for_user
from monitoring.models import Alert
from nodes.models import Node, NodeStatus
from sites.models import Site


@login_required
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    user = request.user
    sites = Site.objects.for_user(user).live()
    by_status = dict(sites.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
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


@login_required
@require_GET
def operation_list(request: HtmxHttpRequest) -> HttpResponse:
    operations = Operation.objects.for_user(request.user).select_related("actor")
    status = request.GET.get("status", "")
    if status:
        operations = operations.filter(status=status)
    page = Paginator(operations, 50).get_page(request.GET.get("page"))
    return TemplateResponse(
        request,
        "farm/operation_list.html",
        {"page": page, "status": status, "statuses": Operation.Status.choices},
    )


@login_required
@require_GET
def operation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    operation = get_for_user(Operation, request.user, pk=pk)
    context = {"operation": operation, "steps": operation.steps.all()}
    if request.htmx:
        response = TemplateResponse(request, "farm/operation_detail.html#progress", context)
        if operation.is_finished:
            # 286 tells htmx to swap this last state in and stop polling.
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return TemplateResponse(request, "farm/operation_detail.html", context)


def _operation_action(request: HtmxHttpRequest, pk: int, action: Any, done: str) -> HttpResponse:
    operation = get_for_user(Operation, request.user, pk=pk)
    try:
        action(operation=operation, actor=request.user)
    except FarmError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("operation_detail", pk=operation.pk)


@login_required
@require_POST
def operation_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _operation_action(request, pk, services.retry, "Retrying from the failed step.")


@login_required
@require_POST
def operation_roll_back(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _operation_action(request, pk, services.roll_back, "Rolling back.")


@login_required
@require_POST
def operation_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _operation_action(request, pk, services.cancel, "Cancelling.")


@operator_required
@require_GET
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    events = AuditEvent.objects.select_related("tenant")
    query = request.GET.get("q", "").strip()
    if query:
        events = events.filter(
            Q(action__icontains=query)
            | Q(actor_email__icontains=query)
            | Q(target_repr__icontains=query)
        )
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return TemplateResponse(request, "farm/audit_log.html", {"page": page, "q": query})
