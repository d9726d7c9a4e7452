"""Site pages: list, new site, detail (live), and the actions with operations of their own."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from farm import tenants
from farm.errors import FarmError
from farm.http import AuthedRequest, report_outcome
from farm.live import render_live
from farm.models import Operation
from farm.models.tenancy import can_change_tenant, tenants_for_user
from farm.permissions import require_change
from farm.shortcuts import get_for_user
from sites import service_states, services
from sites.domains import display_domain
from sites.forms import SiteCreateForm, SiteDeleteForm
from sites.models import Site, SiteStatus, StackState

TRANSITIONAL = (
    SiteStatus.PENDING,
    SiteStatus.PROVISIONING,
    SiteStatus.RESTORING,
    SiteStatus.DELETING,
)


@login_required
@require_GET
def site_list(request: AuthedRequest) -> HttpResponse:
    sites = Site.objects.for_user(request.user).select_related("tenant")
    query = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    if query:
        sites = sites.filter(Q(domain__icontains=query) | Q(tenant__name__icontains=query))
    # Deleted sites are shown only when asked for by status.
    sites = sites.filter(status=status) if status else sites.live()
    page = Paginator(sites, 25).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "q": query,
        "status": status,
        "statuses": Site.Status.choices,
        "polling": any(s.status in TRANSITIONAL for s in page.object_list),
        "can_create": request.user.is_staff
        or tenants_for_user(request.user)
        .filter(memberships__user=request.user, memberships__role="owner")
        .exists(),
    }
    if request.htmx and request.htmx.target == "site-rows":
        return TemplateResponse(request, "sites/site_list.html#rows", context)
    return TemplateResponse(request, "sites/site_list.html", context)


def _create_site(request: AuthedRequest, form: SiteCreateForm) -> services.Created:
    """The site, and the tenant an operator typed in for it: both are made, or neither."""
    new_tenant_name = form.cleaned_data.get("new_tenant_name")
    with transaction.atomic():
        tenant = (
            tenants.create_tenant(name=new_tenant_name, actor=request.user, request=request)
            if new_tenant_name
            else form.cleaned_data["tenant"]
        )
        return services.create_site(
            tenant=tenant,
            domain=form.cleaned_data["domain"],
            image_choice=form.cleaned_data["image_choice"],
            cache_enabled=form.cleaned_data["cache_enabled"],
            actor=request.user,
            request=request,
        )


@login_required
@require_http_methods(["GET", "POST"])
def site_create(request: AuthedRequest) -> HttpResponse:
    initial = {"tenant": request.GET["tenant"]} if request.GET.get("tenant", "").isdigit() else {}
    form = SiteCreateForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            created = _create_site(request, form)
        except services.DomainTaken as exc:
            form.add_error("domain", exc.message)
        except tenants.TenantError as exc:
            form.add_error("new_tenant_name", exc.message)
        except PermissionDenied:
            form.add_error("tenant", "You can create sites only for tenants you own.")
        except FarmError as exc:  # quota, capacity
            form.add_error(None, exc.message)
        else:
            if form.cleaned_data.get("new_tenant_name"):
                messages.success(request, f"Created the tenant {created.site.tenant.name}.")
            if created.awaiting_approval:
                messages.info(
                    request,
                    f"{created.site.display_domain} waits for an operator's approval.",
                )
            else:
                messages.success(request, f"Provisioning {created.site.display_domain}…")
            return redirect("site_detail", pk=created.site.pk)
    return TemplateResponse(request, "sites/site_create.html", {"form": form})


def _detail_context(request: AuthedRequest, site: Site) -> dict[str, object]:
    operations = list(
        Operation.objects.for_target("site", site.pk)
        .select_related("actor")
        .prefetch_related("steps")[:10]
    )
    current = next((op for op in operations if not op.is_finished), None)
    return {
        "site": site,
        "operations": operations,
        "current": current,
        "latest": operations[0] if operations else None,
        "can_change": can_change_tenant(request.user, site.tenant_id),
        "live": current is not None or site.status in TRANSITIONAL,
    }


@login_required
@require_GET
def site_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    site = get_for_user(Site, request.user, select_related=("tenant",), pk=pk)
    context = _detail_context(request, site)
    return render_live(
        request,
        "sites/site_detail.html",
        context,
        finished=not context["live"],
        region=f"site-{site.pk}-live",
    )


@login_required
@require_GET
def site_services(request: AuthedRequest, pk: int) -> HttpResponse:
    """The stack's services and task states as a worker last recorded them (a partial,
    polled every 5 s: it reads one row and never asks the Swarm)."""
    site = get_for_user(Site, request.user, pk=pk)
    state = StackState.objects.filter(site=site).first()
    context = {
        "site": site,
        "state": state,
        "services": state.services if state else [],
        "notice": service_states.notice(state),
    }
    return TemplateResponse(request, "sites/_services.html", context)


def _action(
    request: AuthedRequest, pk: int, action: Callable[..., object], done: str
) -> HttpResponse:
    site = get_for_user(Site, request.user, pk=pk)
    report_outcome(
        request,
        lambda: action(site=site, actor=request.user, request=request),
        done=done.format(domain=site.display_domain),
    )
    return redirect("site_detail", pk=site.pk)


@login_required
@require_POST
def site_suspend(request: AuthedRequest, pk: int) -> HttpResponse:
    return _action(request, pk, services.suspend_site, "Suspending {domain}.")


@login_required
@require_POST
def site_resume(request: AuthedRequest, pk: int) -> HttpResponse:
    return _action(request, pk, services.resume_site, "Resuming {domain}.")


@login_required
@require_POST
def site_repair(request: AuthedRequest, pk: int) -> HttpResponse:
    return _action(request, pk, services.repair_site, "Repairing {domain}.")


@login_required
@require_POST
def site_approve(request: AuthedRequest, pk: int) -> HttpResponse:
    """An operator approves a tenant's domain outside the managed zones."""
    return _action(request, pk, services.approve_site_domain, "Provisioning {domain}.")


@login_required
@require_POST
def site_decline(request: AuthedRequest, pk: int) -> HttpResponse:
    """An operator declines, or the tenant's owner withdraws, a site awaiting approval."""
    return _action(
        request,
        pk,
        services.decline_site_domain,
        "{domain} will not be set up; the name is free.",
    )


@login_required
@require_http_methods(["GET", "POST"])
def site_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    site = get_for_user(Site, request.user, pk=pk)
    require_change(request.user, site.tenant_id)  # the form is for those who may send it
    form = SiteDeleteForm(request.POST or None, site=site, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            services.delete_site(
                site=site,
                actor=request.user,
                confirm_domain=form.cleaned_data["confirm_domain"],
                purge=form.cleaned_data.get("purge", False),
                request=request,
            )
        except FarmError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Deleting {display_domain(site.domain)}.")
            return redirect("site_detail", pk=site.pk)
    return TemplateResponse(request, "sites/site_delete.html", {"site": site, "form": form})
