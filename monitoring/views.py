"""Alerts (scoped: a tenant sees alerts about its own sites)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from farm.http import HtmxHttpRequest
from monitoring.models import Alert


@login_required
@require_GET
def alert_list(request: HtmxHttpRequest) -> HttpResponse:
    alerts = Alert.objects.for_user(request.user).select_related("site")
    status = request.GET.get("status", "firing")
    if status in Alert.Status.values:
        alerts = alerts.filter(status=status)
    page = Paginator(alerts, 50).get_page(request.GET.get("page"))
    return TemplateResponse(request, "monitoring/alert_list.html", {"page": page, "status": status})
