"""Site pages: list and detail (scoped to the user's tenants)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from farm.http import HtmxHttpRequest
from farm.models import Operation
from farm.shortcuts import get_for_user
from sites.models import Site


@login_required
@require_GET
def site_list(request: HtmxHttpRequest) -> HttpResponse:
    sites = Site.objects.for_user(request.user).select_related("tenant")
    query = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    if query:
        sites = sites.filter(Q(domain__icontains=query) | Q(tenant__name__icontains=query))
    # Deleted sites are shown only when asked for by status.
    sites = sites.filter(status=status) if status else sites.live()
    page = Paginator(sites, 25).get_page(request.GET.get("page"))
    context = {"page": page, "q": query, "status": status, "statuses": Site.Status.choices}
    if request.htmx and request.htmx.target == "site-rows":
        return TemplateResponse(request, "sites/site_list.html#rows", context)
    return TemplateResponse(request, "sites/site_list.html", context)


@login_required
@require_GET
def site_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    site = get_for_user(Site, request.user, pk=pk)
    operations = Operation.objects.for_target("site", site.pk).select_related("actor")[:20]
    return TemplateResponse(
        request, "sites/site_detail.html", {"site": site, "operations": operations}
    )
