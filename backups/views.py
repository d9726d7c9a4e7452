"""Backup pages: the list, the RPO ledger, restores with their RTO clock, drills, checks."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from backups import rpo, services
from backups.charts import rto_chart
from backups.models import RPO_TARGET, RTO_TARGET, Backup, RepositoryCheck, Restore
from farm.decorators import operator_required
from farm.errors import FarmError
from farm.http import AuthedRequest
from farm.shortcuts import get_for_user, require_change
from sites.models import Site


@login_required
@require_GET
def backup_list(request: AuthedRequest) -> HttpResponse:
    backups = Backup.objects.for_user(request.user).select_related("site")
    kind = request.GET.get("kind", "")
    status = request.GET.get("status", "")
    site_id = request.GET.get("site", "")
    if site_id.isdigit():
        backups = backups.filter(site_id=int(site_id))
    if kind:
        backups = backups.filter(kind=kind)
    if status:
        backups = backups.filter(status=status)
    page = Paginator(backups, 50).get_page(request.GET.get("page"))
    return TemplateResponse(
        request,
        "backups/backup_list.html",
        {
            "page": page,
            "kind": kind,
            "status": status,
            "site_id": int(site_id) if site_id.isdigit() else None,
            "kinds": Backup.Kind.choices,
            "statuses": Backup.Status.choices,
            "restores": Restore.objects.for_user(request.user).select_related("site")[:10],
        },
    )


@login_required
@require_GET
def backup_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    backup = get_for_user(Backup, request.user, pk=pk)
    return TemplateResponse(request, "backups/backup_detail.html", {"backup": backup})


@login_required
@require_POST
def back_up_now(request: AuthedRequest, site_id: int) -> HttpResponse:
    site = get_for_user(Site, request.user, pk=site_id)
    require_change(request.user, site.tenant_id)
    try:
        services.back_up_now(site=site, actor=request.user, request=request)
    except FarmError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Backing {site.display_domain} up now.")
    return redirect("site_detail", pk=site.pk)


@login_required
@require_GET
def rpo_ledger(request: AuthedRequest) -> HttpResponse:
    sites = rpo.live_sites(request.user)
    error = ""
    # Reading the repository again runs `restic snapshots` over the whole farm's
    # repository: operators only. Everyone else gets the ledger as last cached.
    can_refresh = request.user.is_staff
    try:
        rows = rpo.ledger(sites, fresh=can_refresh and request.GET.get("refresh") == "1")
    except FarmError as exc:
        rows, error = [], exc.message
    rows.sort(key=lambda r: (not r.breached, RPO_TARGET if r.time_left is None else r.time_left))
    return TemplateResponse(
        request,
        "backups/rpo.html",
        {
            "rows": rows,
            "error": error,
            "rpo_hours": RPO_TARGET.total_seconds() / 3600,
            "breached": sum(r.breached for r in rows),
            "can_refresh": can_refresh,
        },
    )


@login_required
@require_GET
def rpo_badge(request: AuthedRequest, site_id: int) -> HttpResponse:
    site = get_for_user(Site, request.user, pk=site_id)
    try:
        row = rpo.ledger([site])[0]
        error = ""
    except FarmError as exc:
        row, error = None, exc.message
    return TemplateResponse(request, "backups/_rpo_badge.html", {"row": row, "error": error})


@login_required
@require_GET
def restore_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    restore = get_for_user(Restore, request.user, pk=pk)
    operation = restore.operation
    context = {
        "restore": restore,
        "operation": operation,
        "steps": operation.steps.all() if operation else [],
        "rto_target_minutes": int(RTO_TARGET.total_seconds() // 60),
        "live": operation is not None and not operation.is_finished,
    }
    if request.htmx and request.htmx.target == f"restore-{restore.pk}":
        response = TemplateResponse(request, "backups/restore_detail.html#live", context)
        if not context["live"]:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return TemplateResponse(request, "backups/restore_detail.html", context)


@login_required
@require_POST
def restore_switch(request: AuthedRequest, pk: int) -> HttpResponse:
    restore = get_for_user(Restore, request.user, pk=pk)
    require_change(request.user, restore.site.tenant_id)
    try:
        services.switch_to_preview(restore=restore, actor=request.user, request=request)
    except FarmError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Switching {restore.site.display_domain} to the preview.")
    return redirect("restore_detail", pk=restore.pk)


@login_required
@require_GET
def drills(request: AuthedRequest) -> HttpResponse:
    restores = list(
        Restore.objects.for_user(request.user).filter(is_drill=True).select_related("site")[:60]
    )
    return TemplateResponse(
        request,
        "backups/drills.html",
        {
            "restores": restores,
            "chart": rto_chart(list(reversed(restores)), RTO_TARGET),
            "rto_target_minutes": int(RTO_TARGET.total_seconds() // 60),
        },
    )


@operator_required
@require_GET
def repository(request: AuthedRequest) -> HttpResponse:
    return TemplateResponse(
        request,
        "backups/repository.html",
        {
            "checks": RepositoryCheck.objects.all()[:30],
            "cluster_backups": Backup.objects.filter(kind=Backup.Kind.CLUSTER)[:30],
        },
    )
