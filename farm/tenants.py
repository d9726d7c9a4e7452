"""Every change to tenants and their people, one function each, each audited.

Operators create tenants and change their name and quota. A tenant's owners
and the operators manage its people: add someone by email with a role (an
unknown email becomes a user with no password, who gets the invitation link),
change a role, remove someone, send the invitation again. A tenant's members
only look. No function here deletes a user: a person may belong to several
tenants, and their audit trail stays.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils.text import slugify

from farm import audit
from farm.errors import FarmError
from farm.invitations import invite_users
from farm.models import Membership, Tenant, User
from farm.models.tenancy import MembershipRole
from farm.permissions import require_change, require_operator

SLUG_MAX_LENGTH = Tenant._meta.get_field("slug").max_length or 60
DEFAULT_SITE_QUOTA: int = Tenant._meta.get_field("site_quota").default


class TenantError(FarmError):
    """A change to a tenant or its people that cannot be made as asked."""


class TenantSlugTaken(TenantError):
    pass


class MemberExists(TenantError):
    pass


class LastOwner(TenantError):
    pass


def slug_for(name: str) -> str:
    """The tenant's short name, from its display name: ``Acme Ltd.`` → ``acme-ltd``."""
    return slugify(name)[:SLUG_MAX_LENGTH].strip("-")


def slug_taken_message(slug: str) -> str:
    existing = Tenant.objects.filter(slug=slug).first()
    if existing is None:
        return f"A tenant with the short name “{slug}” already exists."
    return f"The tenant {existing.name} already has the short name “{slug}”: choose it instead."


def create_tenant(
    *,
    name: str,
    slug: str = "",
    site_quota: int = DEFAULT_SITE_QUOTA,
    actor: User,
    request: HttpRequest | None = None,
) -> Tenant:
    """A new tenant with no people yet. The short name comes from ``name`` unless given.

    Raises TenantSlugTaken when the short name is used (the unique column
    decides, so two simultaneous requests give one tenant).
    """
    require_operator(actor, "Only operators create tenants or change their quota.")
    name = name.strip()
    slug = slug.strip() or slug_for(name)
    if not name or not slug:
        raise TenantError("A tenant needs a name with at least one letter or digit.")
    if site_quota < 0:
        raise TenantError("A site quota cannot be negative.")
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(name=name, slug=slug, site_quota=site_quota)
            audit.record(
                "tenant.create",
                actor=actor,
                target=tenant,
                tenant=tenant,
                request=request,
                data={"name": name, "slug": slug, "site_quota": site_quota},
            )
    except IntegrityError as exc:
        if Tenant.objects.filter(slug=slug).exists():
            raise TenantSlugTaken(slug_taken_message(slug)) from exc
        raise
    return tenant


def update_tenant(
    *,
    tenant: Tenant,
    name: str,
    site_quota: int,
    actor: User,
    request: HttpRequest | None = None,
) -> Tenant:
    """Rename a tenant or change its quota. The short name stays: it is the tenant's id
    in labels and logs. A quota below the sites it has refuses new ones, removes none."""
    require_operator(actor, "Only operators create tenants or change their quota.")
    name = name.strip()
    if not name:
        raise TenantError("A tenant needs a name.")
    if site_quota < 0:
        raise TenantError("A site quota cannot be negative.")
    changes = {
        field: [old, new]
        for field, old, new in (
            ("name", tenant.name, name),
            ("site_quota", tenant.site_quota, site_quota),
        )
        if old != new
    }
    if not changes:
        return tenant
    with transaction.atomic():
        tenant.name = name
        tenant.site_quota = site_quota
        tenant.save(update_fields=["name", "site_quota"])
        audit.record(
            "tenant.update",
            actor=actor,
            target=tenant,
            tenant=tenant,
            request=request,
            data=changes,
        )
    return tenant


@dataclass(frozen=True)
class Added:
    membership: Membership
    new_user: bool
    invited: bool


def add_member(
    *,
    tenant: Tenant,
    email: str,
    role: str,
    actor: User,
    request: HttpRequest,
) -> Added:
    """Give a person a role in the tenant. An email the farm does not know becomes a
    user without a password, who gets the invitation (a link to set one)."""
    require_change(actor, tenant.pk)
    if role not in MembershipRole.values:
        raise TenantError(f"“{role}” is not a role; choose owner or member.")
    email = User.objects.normalize_email(email.strip()).lower()
    if not email:
        raise TenantError("Type the person's email address.")
    try:
        with transaction.atomic():
            user = User.objects.filter(email__iexact=email).first()
            if user is not None and Membership.objects.filter(user=user, tenant=tenant).exists():
                raise MemberExists(f"{user.email} is already in {tenant.name}.")
            new_user = user is None
            if user is None:
                user = User.objects.create_user(email)
            membership = Membership.objects.create(user=user, tenant=tenant, role=role)
            audit.record(
                "tenant.member.add",
                actor=actor,
                target=membership,
                tenant=tenant,
                request=request,
                data={"email": user.email, "role": role, "new_user": new_user},
            )
    except IntegrityError as exc:
        raise MemberExists(f"{email} is already in {tenant.name}.") from exc
    invited = bool(new_user and invite_users([user], actor=actor, request=request))
    return Added(membership, new_user, invited)


def _owners_left_without(membership: Membership) -> int:
    return (
        Membership.objects.filter(tenant_id=membership.tenant_id, role=MembershipRole.OWNER)
        .exclude(pk=membership.pk)
        .count()
    )


def _refuse_losing_the_last_owner(membership: Membership, actor: User) -> None:
    """An owner may not leave the tenant without owners; an operator may (a person left)."""
    if actor.is_operator or membership.role != MembershipRole.OWNER:
        return
    if _owners_left_without(membership) == 0:
        raise LastOwner(
            f"{membership.user.email} is the only owner of {membership.tenant.name}: "
            "make someone else an owner first."
        )


def change_role(
    *, membership: Membership, role: str, actor: User, request: HttpRequest | None = None
) -> Membership:
    require_change(actor, membership.tenant_id)
    if role not in MembershipRole.values:
        raise TenantError(f"“{role}” is not a role; choose owner or member.")
    if role == membership.role:
        return membership
    if role != MembershipRole.OWNER:
        _refuse_losing_the_last_owner(membership, actor)
    with transaction.atomic():
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit.record(
            "tenant.member.role",
            actor=actor,
            target=membership,
            tenant=membership.tenant,
            request=request,
            data={"email": membership.user.email, "role": [old, role]},
        )
    return membership


def remove_member(
    *, membership: Membership, actor: User, request: HttpRequest | None = None
) -> None:
    """Take the person out of the tenant; the user stays (other tenants, the audit log)."""
    require_change(actor, membership.tenant_id)
    _refuse_losing_the_last_owner(membership, actor)
    with transaction.atomic():
        audit.record(
            "tenant.member.remove",
            actor=actor,
            target=membership,
            tenant=membership.tenant,
            request=request,
            data={"email": membership.user.email, "role": membership.role},
        )
        membership.delete()


def resend_invitation(*, membership: Membership, actor: User, request: HttpRequest) -> None:
    """Email the person a new link to set their password (``user.invite`` in the log)."""
    require_change(actor, membership.tenant_id)
    if not membership.user.is_active:
        raise TenantError(f"{membership.user.email}'s account is disabled: nothing was sent.")
    if not invite_users([membership.user], actor=actor, request=request):
        raise TenantError(f"The invitation to {membership.user.email} could not be sent.")
