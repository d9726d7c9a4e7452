"""The changes of a site's life, one function each: create (and approve or decline its
domain), suspend, resume, repair, delete."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from farm import audit
from farm.errors import FarmError, QuotaExceeded
from farm.models import Operation, Tenant, User
from farm.operations import start_operation
from farm.permissions import require_change, require_operator
from nodes.capacity import check_room_for_site
from sites.claims import check_domain_claim
from sites.confirm import check_typed_domain
from sites.models import LIVE_STATUSES, Site, SiteStatus


class DomainTaken(FarmError):
    """The domain cannot be had: a live site holds it, or the claim rules refuse it
    (``code`` says which, as ``sites.claims`` names them)."""

    def __init__(self, message: str, *, code: str = "taken") -> None:
        super().__init__(message, retryable=False)
        self.code = code


@dataclass(frozen=True)
class Created:
    site: Site
    # None while the domain awaits an operator's approval (nothing is provisioned yet).
    provision: Operation | None

    @property
    def awaiting_approval(self) -> bool:
        return self.provision is None

    @property
    def operation(self) -> Operation:
        """The provision operation; a FarmError for a site awaiting approval."""
        if self.provision is None:
            raise FarmError(f"{self.site.domain} awaits an operator's approval; nothing runs yet.")
        return self.provision


def _start(kind: str, site: Site, actor: User, **params: object) -> Operation:
    return start_operation(
        kind,
        target_type="site",
        target_id=site.pk,
        target_repr=site.domain,
        tenant=site.tenant,
        actor=actor,
        params=params,
    )


def create_site(
    *,
    tenant: Tenant,
    domain: str,
    image_choice: str,
    cache_enabled: bool,
    actor: User,
    request: HttpRequest | None = None,
) -> Created:
    """Record the site and start its provision operation (enqueued after commit).

    The claim rules (``sites.claims.check_domain_claim``) decide first: a refused
    domain raises DomainTaken (with the rule's code); a tenant's domain outside the
    managed zones gives a site that awaits an operator's approval, with no
    operation (it counts against the quota meanwhile). Raises DomainTaken when a
    live site already has the domain (the unique ``domain_claim`` column decides,
    so two simultaneous requests give one site), QuotaExceeded, or CapacityError
    when no worker has room.
    """
    require_change(actor, tenant.pk)
    # Before the transaction: the claim check may ask Cloudflare, and no row lock
    # should wait on the network.
    claim = check_domain_claim(domain, actor=actor)
    domain = claim.domain
    if claim.refused:
        raise DomainTaken(claim.reason, code=claim.code)
    try:
        with transaction.atomic():
            locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
            live = Site.objects.filter(tenant=locked, status__in=LIVE_STATUSES).count()
            if live >= locked.site_quota:
                raise QuotaExceeded(
                    f"{locked.name} already has {live} of its {locked.site_quota} sites; "
                    "delete one or ask an operator to raise the quota."
                )
            check_room_for_site(cache_enabled=cache_enabled, live=Site.objects.live_counts())
            site = Site.objects.create(
                tenant=locked,
                domain=domain,
                image_choice=image_choice,
                cache_enabled=cache_enabled,
                status=SiteStatus.AWAITING_APPROVAL
                if claim.needs_approval
                else SiteStatus.PROVISIONING,
                created_by=actor,
            )
            operation = None if claim.needs_approval else _start("site.provision", site, actor)
            audit.record(
                "site.create",
                actor=actor,
                target=site,
                request=request,
                data={
                    "domain": domain,
                    "image": image_choice,
                    "cache": cache_enabled,
                    "awaiting_approval": claim.needs_approval,
                },
            )
    except IntegrityError as exc:
        if Site.objects.filter(domain_claim=domain).exists():
            raise DomainTaken(f"{domain} is already a site on this farm.") from exc
        raise
    return Created(site, operation)


def approve_site_domain(
    *, site: Site, actor: User, request: HttpRequest | None = None
) -> Operation:
    """An operator approves the domain of a site that awaits it: provisioning starts."""
    require_operator(actor, "Only operators can approve a site's domain.")
    with transaction.atomic():
        # Conditional: two operators approving at once start one provision.
        moved = Site.objects.filter(pk=site.pk, status=SiteStatus.AWAITING_APPROVAL).update(
            status=SiteStatus.PROVISIONING
        )
        if not moved:
            raise FarmError(f"{site.domain} is not waiting for approval.")
        # Its room was reserved when it was created: a waiting site counts as live.
        site.status = SiteStatus.PROVISIONING
        operation = _start("site.provision", site, actor)
        audit.record(
            "site.approve_domain",
            actor=actor,
            target=site,
            request=request,
            data={"domain": site.domain},
        )
    return operation


def decline_site_domain(*, site: Site, actor: User, request: HttpRequest | None = None) -> None:
    """An operator declines (or the tenant's owner withdraws) a site awaiting approval:
    nothing was set up, so the site is simply marked deleted and its domain freed."""
    require_change(actor, site.tenant_id)
    with transaction.atomic():
        declined = Site.objects.filter(pk=site.pk, status=SiteStatus.AWAITING_APPROVAL).update(
            status=SiteStatus.DELETED, domain_claim=None
        )
        if not declined:
            raise FarmError(f"{site.domain} is not waiting for approval.")
        site.status = SiteStatus.DELETED
        audit.record(
            "site.decline_domain" if actor.is_staff else "site.withdraw",
            actor=actor,
            target=site,
            request=request,
            data={"domain": site.domain},
        )


def suspend_site(*, site: Site, actor: User, request: HttpRequest | None = None) -> Operation:
    require_change(actor, site.tenant_id)
    if not site.can_suspend():
        raise FarmError(f"A {site.get_status_display().lower()} site cannot be suspended.")
    with transaction.atomic():
        operation = _start("site.suspend", site, actor)
        audit.record("site.suspend", actor=actor, target=site, request=request)
    return operation


def resume_site(*, site: Site, actor: User, request: HttpRequest | None = None) -> Operation:
    require_change(actor, site.tenant_id)
    if not site.can_resume():
        raise FarmError("Only a suspended site can be resumed.")
    with transaction.atomic():
        operation = _start("site.resume", site, actor)
        audit.record("site.resume", actor=actor, target=site, request=request)
    return operation


def repair_site(*, site: Site, actor: User, request: HttpRequest | None = None) -> Operation:
    """Re-run the provision steps: each checks the real system and fixes what is missing."""
    require_operator(actor, "Repairs are for operators.")
    if not site.can_repair():
        raise FarmError(f"A {site.get_status_display().lower()} site cannot be repaired.")
    with transaction.atomic():
        operation = _start("site.repair", site, actor)
        audit.record("site.repair", actor=actor, target=site, request=request)
    return operation


def delete_site(
    *, site: Site, actor: User, confirm_domain: str, purge: bool, request: HttpRequest | None = None
) -> Operation:
    """Remove the stack, DNS record, database and user; files and backups are kept
    unless an operator purges them."""
    require_change(actor, site.tenant_id)
    if purge:
        require_operator(actor, "Only operators can purge files and backups.")
    check_typed_domain(site, confirm_domain)
    if not site.can_delete():
        raise FarmError(f"A {site.get_status_display().lower()} site cannot be deleted.")
    with transaction.atomic():
        operation = _start("site.delete", site, actor, purge=purge)
        Site.objects.filter(pk=site.pk).update(status=SiteStatus.DELETING)
        audit.record(
            "site.delete.purge" if purge else "site.delete",
            actor=actor,
            target=site,
            request=request,
            data={"purge": purge},
        )
    return operation
