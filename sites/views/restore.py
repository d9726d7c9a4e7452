"""The restore wizard: site → point in time → scope → target → confirm → run; and the
switch of a site to its verified preview.

One screen per step. Each step is a plain form (GET, the last one POST) that
carries the earlier answers as hidden fields, so it all works without
JavaScript; with htmx each answer swaps only the wizard panel in and pushes
the URL, so Back and reload behave.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from backups import policy
from backups.models import Restore, RestoreScope, RestoreTarget
from farm.errors import FarmError
from farm.http import AuthedRequest, report_outcome
from farm.models import Membership, User
from farm.models.tenancy import MembershipRole
from farm.permissions import require_change
from farm.shortcuts import get_for_user
from sites import services
from sites.forms import ConfirmDomainForm
from sites.models import RESTORABLE_STATUSES, Site

STEPS = ("site", "point", "scope", "target", "confirm")
SITES_PAGE = 50


def parse_point(value: str) -> datetime | None:
    """The chosen point in time, or None when it is missing or not a time at all."""
    try:
        point = parse_datetime(value) if value else None
    except ValueError:  # well formed but impossible, such as February 30th
        return None
    if point is not None and timezone.is_naive(point):
        point = timezone.make_aware(point)
    return point


def _render(request: AuthedRequest, step: str, context: dict[str, object]) -> HttpResponse:
    context.update(step=step, steps=STEPS, step_index=STEPS.index(step) + 1)
    template = "backups/restore_wizard.html"
    if request.htmx and request.htmx.target == "wizard":
        template += "#wizard"
    return TemplateResponse(request, template, context)


def restorable_sites(user: User) -> QuerySet[Site]:
    """The sites ``user`` may restore: in a restorable state, of a tenant they own (any,
    for an operator). One query, however many sites and tenants."""
    sites = Site.objects.for_user(user).filter(status__in=RESTORABLE_STATUSES)
    if not user.is_staff:
        owned = Membership.objects.filter(user=user, role=MembershipRole.OWNER)
        sites = sites.filter(tenant__in=owned.values("tenant_id"))
    return sites.defer("db_password", "wp_salts")


@login_required
@require_http_methods(["GET"])
def choose_site(request: AuthedRequest) -> HttpResponse:
    sites = restorable_sites(request.user).select_related("tenant")
    query = request.GET.get("q", "").strip().lower()
    if query:
        sites = sites.filter(domain__contains=query)
    page = Paginator(sites, SITES_PAGE).get_page(request.GET.get("page"))
    return _render(request, "site", {"page": page, "sites": list(page.object_list), "q": query})


@login_required
@require_http_methods(["GET", "POST"])
def wizard(request: AuthedRequest, site_id: int) -> HttpResponse:
    site = get_for_user(Site, request.user, pk=site_id)
    require_change(request.user, site.tenant_id)  # every step leads to the restore
    data = request.POST if request.method == "POST" else request.GET
    context: dict[str, object] = {"site": site}
    errors: list[str] = []

    point = parse_point(data.get("point", ""))
    if point is None:
        # As the RPO check last listed the repository (every 10 min): no restic here.
        context["snapshots"] = policy.site_snapshots(site.pk)
        context["listed_at"] = policy.last_checked()
        if unreadable := policy.repository_unreadable():
            errors.append(
                "The last check could not read the repository, so these points may be "
                f"out of date: {unreadable}"
            )
        context["now"] = timezone.now()
        return _render(request, "point", {**context, "errors": errors})
    context["point"] = point

    scope = data.get("scope", "")
    if scope not in RestoreScope.values:
        return _render(request, "scope", {**context, "scopes": RestoreScope.choices})
    context["scope"] = scope
    context["scope_label"] = RestoreScope(scope).label

    target = data.get("target", "")
    if target not in RestoreTarget.values:
        return _render(request, "target", {**context, "targets": RestoreTarget.choices})
    context["target"] = target
    context["target_label"] = RestoreTarget(target).label

    form = ConfirmDomainForm(request.POST if request.method == "POST" else None, site=site)
    if form.is_valid():
        try:
            restore = services.start_restore(
                site=site,
                point_in_time=point,
                scope=scope,
                target=target,
                actor=request.user,
                confirm_domain=form.cleaned_data["confirm_domain"],
                request=request,
            )
        except FarmError as exc:
            errors.append(exc.message)
        else:
            messages.success(request, f"Restoring {site.display_domain}: the RTO clock runs.")
            url = reverse("restore_detail", args=[restore.pk])
            # htmx would follow a redirect inside the panel; send the browser there instead.
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return _render(request, "confirm", {**context, "form": form, "errors": errors})


@login_required
@require_POST
def restore_switch(request: AuthedRequest, pk: int) -> HttpResponse:
    restore = get_for_user(Restore, request.user, pk=pk)
    report_outcome(
        request,
        lambda: services.switch_to_preview(restore=restore, actor=request.user, request=request),
        done=f"Switching {restore.site.display_domain} to the preview.",
    )
    return redirect("restore_detail", pk=restore.pk)
