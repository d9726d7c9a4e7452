"""Operations and the audit log (the dashboard is sites.views.dashboard)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from farm import services
from farm.decorators import operator_required
from farm.http import HtmxHttpRequest, report_outcome
from farm.live import render_live
from farm.models import AuditEvent, Operation
from farm.shortcuts import get_for_user


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
    return render_live(
        request,
        "farm/operation_detail.html",
        {"operation": operation, "steps": operation.steps.all()},
        finished=operation.is_finished,
        region=f"operation-{operation.pk}",
    )


def _operation_action(request: HtmxHttpRequest, pk: int, action: Any, done: str) -> HttpResponse:
    operation = get_for_user(Operation, request.user, pk=pk)
    report_outcome(request, lambda: action(operation=operation, actor=request.user), done=done)
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
