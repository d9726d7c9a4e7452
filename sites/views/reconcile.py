"""Drift & orphans (operators): the last reconcile's report, and starting one."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from farm.decorators import operator_required
from farm.errors import OperationConflict
from farm.http import AuthedRequest
from sites import services
from sites.models import ReconcileReport


@operator_required
@require_GET
def reconcile_page(request: AuthedRequest) -> HttpResponse:
    context = {
        "report": ReconcileReport.objects.first(),
        "running": services.running_reconcile(),
    }
    return TemplateResponse(request, "sites/reconcile.html", context)


@operator_required
@require_POST
def reconcile_run(request: AuthedRequest) -> HttpResponse:
    """Start the comparison and follow it on its operation's page (one runs at a time)."""
    try:
        operation = services.start_reconcile(actor=request.user, request=request)
    except OperationConflict:
        running = services.running_reconcile()
        if running is None:  # it finished in between
            return redirect("site_reconcile")
        messages.info(request, "A comparison is already running; here it is.")
        return redirect("operation_detail", pk=running.pk)
    messages.success(request, "Comparing every site with Swarm, MariaDB and the disk.")
    return redirect("operation_detail", pk=operation.pk)
