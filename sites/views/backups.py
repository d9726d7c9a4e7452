"""The backup pages that act on a site or list sites: back up now, the RPO ledger and
a site's RPO badge."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from backups import policy
from backups.models import RPO_TARGET
from farm.errors import FarmError
from farm.http import AuthedRequest, report_outcome
from farm.shortcuts import get_for_user
from sites import services
from sites.models import Site


@login_required
@require_POST
def back_up_now(request: AuthedRequest, site_id: int) -> HttpResponse:
    site = get_for_user(Site, request.user, pk=site_id)
    report_outcome(
        request,
        lambda: services.back_up_now(site=site, actor=request.user, request=request),
        done=f"Backing {site.display_domain} up now.",
    )
    return redirect("site_detail", pk=site.pk)


@login_required
@require_GET
def rpo_ledger(request: AuthedRequest) -> HttpResponse:
    sites = services.live_sites(request.user)
    error = ""
    # Reading the repository again runs `restic snapshots` over the whole farm's
    # repository: operators only. Everyone else gets the ledger as last cached.
    can_refresh = request.user.is_staff
    try:
        rows = policy.ledger(sites, fresh=can_refresh and request.GET.get("refresh") == "1")
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
        row = policy.ledger([site])[0]
        error = ""
    except FarmError as exc:
        row, error = None, exc.message
    return TemplateResponse(request, "backups/_rpo_badge.html", {"row": row, "error": error})
