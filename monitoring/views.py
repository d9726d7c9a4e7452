"""Alerts (scoped: a tenant sees alerts about its own sites)."""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from farm.http import HtmxHttpRequest
from monitoring.alertmanager import ingest
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


def _webhook_token() -> str:
    path = Path(settings.FARM_SECRETS_DIR) / "alertmanager-token"
    return path.read_text().strip() if path.exists() else ""


@csrf_exempt
@require_POST
def alertmanager_webhook(request: HttpRequest) -> HttpResponse:
    """Alertmanager's webhook receiver; authenticated by the bearer token farm_up made."""
    expected = _webhook_token()
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return JsonResponse({"error": "unauthorised"}, status=401)
    try:
        payload = json.loads(request.body)
    except json.JSONDecodeError:
        return JsonResponse({"error": "body is not JSON"}, status=400)
    return JsonResponse({"alerts": ingest(payload)})
