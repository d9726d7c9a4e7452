"""Backup pages (scoped: a tenant sees its own sites' backups; cluster ones are operators')."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from backups.models import Backup
from farm.http import HtmxHttpRequest
from farm.shortcuts import get_for_user


@login_required
@require_GET
def backup_list(request: HtmxHttpRequest) -> HttpResponse:
    backups = Backup.objects.for_user(request.user).select_related("site")
    kind = request.GET.get("kind", "")
    if kind:
        backups = backups.filter(kind=kind)
    page = Paginator(backups, 50).get_page(request.GET.get("page"))
    return TemplateResponse(
        request,
        "backups/backup_list.html",
        {"page": page, "kind": kind, "kinds": Backup.Kind.choices},
    )


@login_required
@require_GET
def backup_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    backup = get_for_user(Backup, request.user, pk=pk)
    return TemplateResponse(request, "backups/backup_detail.html", {"backup": backup})
