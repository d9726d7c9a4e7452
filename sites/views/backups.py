"""The backup pages that act on a site or list sites: back up now, the RPO ledger (and
checking it again) and a site's RPO badge. The ledger and the badge read the rows the
RPO check wrote (``backups.policy``): no page waits on restic."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_q.tasks import async_task

from backups import policy
from backups.models import RPO_TARGET
from farm.decorators import operator_required
from farm.http import AuthedRequest, report_outcome
from farm.shortcuts import get_for_user
from sites import services
from sites.models import Site

LEDGER_PAGE = 50


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
    now = timezone.now()
    sites = services.watched_sites(request.user).select_related("rpo")
    page = Paginator(sites.order_by(*policy.ledger_order(now)), LEDGER_PAGE).get_page(
        request.GET.get("page")
    )
    return TemplateResponse(
        request,
        "backups/rpo.html",
        {
            "page": page,
            "rows": [policy.ledger_row(site) for site in page],
            "error": policy.repository_unreadable(),
            "checked_at": policy.last_checked(),
            "rpo_hours": RPO_TARGET.total_seconds() / 3600,
            "breached": sites.filter(policy.breached(now)).count(),
            "can_refresh": request.user.is_staff,
        },
    )


@operator_required
@require_POST
def rpo_check(request: AuthedRequest) -> HttpResponse:
    """Read the repository again (what the 10-minute check does): operators only. The
    worker runs it (`restic snapshots` over the whole repository can take minutes);
    the ledger shows when the last check ran."""
    async_task("sites.tasks.check_rpo", group="rpo")
    messages.success(
        request, "Reading the repository in the worker; the ledger shows the result when done."
    )
    return redirect("rpo_ledger")


@login_required
@require_GET
def rpo_badge(request: AuthedRequest, site_id: int) -> HttpResponse:
    site = get_for_user(Site, request.user, pk=site_id)
    # One row read (site.rpo), whatever the size of the farm's repository.
    context = {"row": policy.ledger_row(site), "error": policy.repository_unreadable()}
    return TemplateResponse(request, "backups/_rpo_badge.html", context)
