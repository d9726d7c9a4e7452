"""A WordPress site: the desired state the panel keeps; Swarm holds the actual state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models

from farm.crypto import EncryptedTextField
from farm.models import TenantScopedQuerySet
from nodes.capacity import LiveSites, counted_site_ids
from sites.domains import DOMAIN_PATTERN, display_domain, is_local_domain

if TYPE_CHECKING:
    from farm.models import Tenant


class SiteStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    # A tenant's site on a domain outside the managed zones: nothing is set up
    # until an operator approves the domain (sites.services.approve_site_domain).
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"
    SUSPENDED = "suspended", "Suspended"
    RESTORING = "restoring", "Restoring"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


# Statuses in which a site counts against its tenant's quota and holds its domain.
LIVE_STATUSES = (
    SiteStatus.PENDING,
    SiteStatus.AWAITING_APPROVAL,
    SiteStatus.PROVISIONING,
    SiteStatus.ACTIVE,
    SiteStatus.FAILED,
    SiteStatus.SUSPENDED,
    SiteStatus.RESTORING,
    SiteStatus.DELETING,
)

# Statuses a site can be restored from (``Site.can_restore``).
RESTORABLE_STATUSES = (SiteStatus.ACTIVE, SiteStatus.SUSPENDED, SiteStatus.FAILED)


class SiteQuerySet(TenantScopedQuerySet):
    tenant_path = "tenant"

    def live(self) -> SiteQuerySet:
        return self.filter(status__in=LIVE_STATUSES)

    def live_counts(self) -> LiveSites:
        """The live sites among these, with and without Redis: what they reserve on
        the workers (``nodes.capacity.check_room_for_site``); and how many of them the
        last node sync saw no task of on a worker that counts (a site seen only on a
        drained or down node is placed again). Two queries."""
        seen = counted_site_ids()
        cached = models.Q(cache_enabled=True)
        unseen = ~models.Q(pk__in=seen or [])
        counts = self.live().aggregate(
            total=models.Count("id"),
            cached=models.Count("id", filter=cached),
            unseen=models.Count("id", filter=unseen),
            unseen_cached=models.Count("id", filter=unseen & cached),
        )
        if seen is None:
            return LiveSites(cached=counts["cached"], plain=counts["total"] - counts["cached"])
        return LiveSites(
            cached=counts["cached"],
            plain=counts["total"] - counts["cached"],
            unseen_cached=counts["unseen_cached"],
            unseen_plain=counts["unseen"] - counts["unseen_cached"],
        )


class Site(models.Model):
    Status = SiteStatus

    tenant: models.ForeignKey[Tenant, Tenant] = models.ForeignKey(
        "farm.Tenant", on_delete=models.PROTECT, related_name="sites"
    )
    domain = models.CharField(
        max_length=253, db_index=True, help_text="Lower-case ASCII (IDNA) form."
    )
    # The domain while the site is live, NULL once deleted: UNIQUE, so two live
    # sites can never share a domain (NULLs never collide), while a deleted
    # site's row stays for its history and backups and frees the name.
    domain_claim = models.CharField(
        max_length=253, null=True, blank=True, unique=True, editable=False
    )
    status = models.CharField(
        max_length=20, choices=SiteStatus.choices, default=SiteStatus.PENDING, db_index=True
    )
    image_choice = models.CharField(
        max_length=40,
        default="php8.2",
        help_text="Key of the PHP/WordPress runtime in the image map.",
    )
    cache_enabled = models.BooleanField(default=True, help_text="Redis object cache.")
    # Allocated by the provision operation, derived from the id, never the domain.
    db_name = models.CharField(max_length=64, blank=True)
    db_user = models.CharField(max_length=32, blank=True)
    db_password = EncryptedTextField(blank=True, default="")
    wp_salts = EncryptedTextField(blank=True, default="", help_text="JSON, encrypted.")
    network_shard = models.CharField(max_length=40, blank=True)
    maintenance = models.BooleanField(
        default=False, help_text="Traefik answers with the maintenance page (suspended, restoring)."
    )
    node = models.ForeignKey(
        "nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="sites"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    objects = SiteQuerySet.as_manager()

    class Meta:
        ordering = ["domain"]
        constraints = [
            # Domains are stored normalised (lower-case ASCII), so the plain
            # UNIQUE on domain_claim is case-insensitive on every backend.
            models.CheckConstraint(
                condition=models.Q(domain__regex=DOMAIN_PATTERN),
                name="site_domain_normalised",
            ),
        ]

    def __str__(self) -> str:
        return self.domain

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.domain_claim = self.domain if self.is_live() else None
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and ("status" in update_fields or "domain" in update_fields):
            kwargs["update_fields"] = {*update_fields, "domain_claim"}
        super().save(*args, **kwargs)

    @property
    def stack_name(self) -> str:
        return f"wp-{self.pk}"

    @property
    def display_domain(self) -> str:
        return display_domain(self.domain)

    @property
    def url(self) -> str:
        scheme = "http" if is_local_domain(self.domain) else "https"
        port = getattr(settings, "FARM_LOCAL_HTTP_PORT", 80)
        if scheme == "http" and port not in (80, None):
            return f"http://{self.domain}:{port}/"
        return f"{scheme}://{self.domain}/"

    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def awaits_approval(self) -> bool:
        return self.status == SiteStatus.AWAITING_APPROVAL

    def can_suspend(self) -> bool:
        return self.status == SiteStatus.ACTIVE

    def can_resume(self) -> bool:
        return self.status == SiteStatus.SUSPENDED

    def can_delete(self) -> bool:
        return self.status in (SiteStatus.ACTIVE, SiteStatus.SUSPENDED, SiteStatus.FAILED)

    def can_repair(self) -> bool:
        """Whether re-running the provision steps may fix the site (an operator's call)."""
        return self.status in (SiteStatus.ACTIVE, SiteStatus.FAILED, SiteStatus.SUSPENDED)

    def can_back_up(self) -> bool:
        return self.status in (SiteStatus.ACTIVE, SiteStatus.SUSPENDED)

    def can_restore(self) -> bool:
        return self.status in RESTORABLE_STATUSES

    def audit_repr(self) -> dict[str, Any]:
        return {"domain": self.domain, "status": self.status, "tenant": self.tenant_id}


class ReconcileReport(models.Model):
    """One comparison of the panel's sites with Swarm, MariaDB and the disk."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    drift = models.PositiveIntegerField(default=0)
    orphans = models.PositiveIntegerField(default=0)
    findings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, help_text="Why the comparison could not be made.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M}"
        return f"Reconcile {when}: {self.drift} drift, {self.orphans} orphans"


class StackState(models.Model):
    """What the Swarm last said about a site's services and their tasks, as a worker
    recorded it: every minute (``sites.tasks.record_service_states``) and right after
    each step that changes the stack. The site page reads this row; it never asks the
    Swarm itself."""

    site = models.OneToOneField(
        Site, primary_key=True, on_delete=models.CASCADE, related_name="stack_state"
    )
    services = models.JSONField(
        default=list, blank=True, help_text="Each service: name, image, replicas, tasks."
    )
    seen_at = models.DateTimeField(
        null=True, blank=True, help_text="When the Swarm last answered for this site."
    )
    checked_at = models.DateTimeField(help_text="When a worker last asked.")
    error = models.TextField(blank=True, help_text="Why the last asking failed ('' if it did not).")

    def __str__(self) -> str:
        return f"{self.site_id}: {len(self.services)} services, seen {self.seen_at}"


class OutageCause(models.TextChoices):
    DRAIN = "drain", "Node drained"
    NODE_DOWN = "node_down", "Node down"


class SiteOutage(models.Model):
    """How long a site was unreachable through the edge while its tasks left a node
    (drained by an operator, or down): one row per site and operation, written by
    the operation's WaitSitesAnswer step from what ``nodes.edge.OutageProbe`` saw."""

    Cause = OutageCause

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="outages")
    node = models.ForeignKey(
        "nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="outages"
    )
    cause = models.CharField(max_length=10, choices=OutageCause.choices)
    operation = models.ForeignKey(
        "farm.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Where the site's tasks run now (hostnames, comma separated), as the step found it.
    moved_to = models.CharField(max_length=255, blank=True)
    # Drain: when the node was set to drain; node down: when Swarm marked it down.
    started_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    # What the probe saw fail, from its first failed GET to the answer that ended it
    # (0 when every GET answered).
    unreachable_s = models.FloatField(null=True, blank=True)
    # Node down only: from Swarm's down time (the node's UpdatedAt) to the answer.
    rto_s = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "site"], name="one_outage_per_operation")
        ]

    def __str__(self) -> str:
        return f"{self.site_id} {self.get_cause_display()} {self.unreachable_s} s"
