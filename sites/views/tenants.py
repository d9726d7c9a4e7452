"""Tenants and their people: the list, a tenant with its members, and the changes to them.

These pages count each tenant's live sites, so they live with the sites; the
changes themselves are farm's (``farm.tenants``, ``farm.tenant_forms``).

Operators see every tenant, create tenants and change their name and quota.
A tenant's owners manage its people (add by email, change a role, remove,
send the invitation again); its members see the list and change nothing (403).
Another tenant is a 404, like every object outside one's tenants.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from farm import tenants
from farm.decorators import operator_required
from farm.errors import FarmError
from farm.http import AuthedRequest, report_outcome
from farm.models import Membership, Tenant
from farm.models.tenancy import can_change_tenant, tenants_for_user
from farm.permissions import require_operator
from farm.tenant_forms import MemberAddForm, MemberRoleForm, TenantCreateForm, TenantEditForm
from sites.models import LIVE_STATUSES


def _get_tenant(request: AuthedRequest, pk: int) -> Tenant:
    tenant = tenants_for_user(request.user).filter(pk=pk).first()
    if tenant is None:
        raise Http404("No tenant matches the given query.")
    return tenant


def _get_membership(request: AuthedRequest, pk: int, member_pk: int) -> Membership:
    tenant = _get_tenant(request, pk)
    membership = (
        Membership.objects.filter(tenant=tenant, pk=member_pk).select_related("user").first()
    )
    if membership is None:
        raise Http404("No member of this tenant matches the given query.")
    return membership


@login_required
@require_GET
def tenant_list(request: AuthedRequest) -> HttpResponse:
    rows = tenants_for_user(request.user).annotate(
        live_sites=Count("sites", filter=Q(sites__status__in=LIVE_STATUSES), distinct=True),
        members=Count("memberships", distinct=True),
    )
    query = request.GET.get("q", "").strip()
    if query:
        rows = rows.filter(Q(name__icontains=query) | Q(slug__icontains=query))
    page = Paginator(rows.order_by("name", "pk"), 50).get_page(request.GET.get("page"))
    context = {"page": page, "q": query}
    if request.htmx and request.htmx.target == "tenant-rows":
        return TemplateResponse(request, "farm/tenants/tenant_list.html#rows", context)
    return TemplateResponse(request, "farm/tenants/tenant_list.html", context)


@operator_required
@require_http_methods(["GET", "POST"])
def tenant_create(request: AuthedRequest) -> HttpResponse:
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant = tenants.create_tenant(
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
                site_quota=form.cleaned_data["site_quota"],
                actor=request.user,
                request=request,
            )
        except tenants.TenantSlugTaken as exc:
            form.add_error("slug", exc.message)
        except FarmError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Created {tenant.name}. Add its people below.")
            return redirect("tenant_detail", pk=tenant.pk)
    return TemplateResponse(request, "farm/tenants/tenant_create.html", {"form": form})


def _render_detail(
    request: AuthedRequest, tenant: Tenant, add_form: MemberAddForm | None = None
) -> HttpResponse:
    can_manage = can_change_tenant(request.user, tenant.pk)
    context = {
        "tenant": tenant,
        "memberships": tenant.memberships.select_related("user").order_by("user__email"),
        "live_sites": tenant.sites.filter(status__in=LIVE_STATUSES).count(),
        "can_manage": can_manage,
        "add_form": (add_form or MemberAddForm(tenant=tenant)) if can_manage else None,
        "roles": Membership.Role.choices,
    }
    if request.htmx and request.htmx.target == "members":
        return TemplateResponse(request, "farm/tenants/tenant_detail.html#members", context)
    return TemplateResponse(request, "farm/tenants/tenant_detail.html", context)


@login_required
@require_GET
def tenant_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    return _render_detail(request, _get_tenant(request, pk))


@login_required
@require_http_methods(["GET", "POST"])
def tenant_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    tenant = _get_tenant(request, pk)
    require_operator(request.user, "Only operators change a tenant's name or quota.")
    form = TenantEditForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        try:
            tenants.update_tenant(
                tenant=tenant,
                name=form.cleaned_data["name"],
                site_quota=form.cleaned_data["site_quota"],
                actor=request.user,
                request=request,
            )
        except FarmError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Saved {tenant.name}.")
            return redirect("tenant_detail", pk=tenant.pk)
    return TemplateResponse(
        request, "farm/tenants/tenant_edit.html", {"tenant": tenant, "form": form}
    )


@login_required
@require_POST
def member_add(request: AuthedRequest, pk: int) -> HttpResponse:
    tenant = _get_tenant(request, pk)
    form = MemberAddForm(request.POST, tenant=tenant)
    if form.is_valid():
        try:
            added = tenants.add_member(
                tenant=tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=request.user,
                request=request,
            )
        except FarmError as exc:
            form.add_error("email", exc.message)
        else:
            # The same words whether or not the email was known: an owner learns
            # nothing about other tenants' people from this page.
            user = added.membership.user
            messages.success(
                request,
                f"Added {user.email} as {added.membership.get_role_display().lower()}. "
                "Someone without a login yet gets an email to set a password.",
            )
            return redirect("tenant_detail", pk=tenant.pk)
    return _render_detail(request, tenant, add_form=form)


@login_required
@require_POST
def member_role(request: AuthedRequest, pk: int, member_pk: int) -> HttpResponse:
    membership = _get_membership(request, pk, member_pk)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner or member.")
    else:
        role = form.cleaned_data["role"]
        report_outcome(
            request,
            lambda: tenants.change_role(
                membership=membership, role=role, actor=request.user, request=request
            ),
            done=f"{membership.user.email} is now {Membership.Role(role).label.lower()}.",
        )
    return redirect("tenant_detail", pk=membership.tenant_id)


@login_required
@require_POST
def member_remove(request: AuthedRequest, pk: int, member_pk: int) -> HttpResponse:
    membership = _get_membership(request, pk, member_pk)
    email, tenant_id = membership.user.email, membership.tenant_id
    report_outcome(
        request,
        lambda: tenants.remove_member(membership=membership, actor=request.user, request=request),
        done=f"Removed {email}.",
    )
    if tenant_id is not None and not tenants_for_user(request.user).filter(pk=tenant_id).exists():
        return redirect("tenant_list")  # an owner who removed themselves sees it no more
    return redirect("tenant_detail", pk=tenant_id)


@login_required
@require_POST
def member_invite(request: AuthedRequest, pk: int, member_pk: int) -> HttpResponse:
    membership = _get_membership(request, pk, member_pk)
    report_outcome(
        request,
        lambda: tenants.resend_invitation(
            membership=membership, actor=request.user, request=request
        ),
        done=f"Sent {membership.user.email} a new invitation.",
    )
    return redirect("tenant_detail", pk=membership.tenant_id)
