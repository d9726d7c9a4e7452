"""The changes people and schedules make to a site's backups: back up now, start what
the tick claimed; and the RPO check over the sites it applies to."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from backups import policy as backup_policy
from backups.models import BackupKind, BackupPolicy
from farm import audit
from farm.errors import FarmError, OperationConflict
from farm.models import Operation, User
from farm.operations import start_operation
from farm.permissions import require_change
from sites.models import Site, SiteStatus

ALL_KINDS: list[str] = [BackupKind.DB, BackupKind.FILES, BackupKind.CONFIG]
# The tick claims the due backups of sites in these statuses...
SCHEDULED = (SiteStatus.ACTIVE, SiteStatus.SUSPENDED)
# ...and a claimed site in one of these is backed up (a restoring one once its restore ends).
CLAIMABLE = (SiteStatus.ACTIVE, SiteStatus.SUSPENDED, SiteStatus.RESTORING)
# The sites the RPO applies to.
WATCHED = (SiteStatus.ACTIVE, SiteStatus.SUSPENDED, SiteStatus.RESTORING)


def start_site_backup(
    site: Site, *, kinds: list[str], reason: str, actor: User | None = None, attempt: int = 1
) -> Operation:
    return start_operation(
        "backup.site",
        target_type="site",
        target_id=site.pk,
        target_repr=site.domain,
        tenant=site.tenant,
        actor=actor,
        params={"kinds": kinds, "reason": reason, "attempt": attempt},
    )


def back_up_now(*, site: Site, actor: User, request: HttpRequest | None = None) -> Operation:
    """A manual backup of everything; a second click while one runs is refused."""
    require_change(actor, site.tenant_id)
    if not site.can_back_up():
        raise FarmError(f"A {site.get_status_display().lower()} site cannot be backed up.")
    with transaction.atomic():
        operation = start_site_backup(site, kinds=list(ALL_KINDS), reason="manual", actor=actor)
        audit.record("backup.now", actor=actor, target=site, request=request)
    return operation


def claim_due_backups(now: datetime) -> int:
    """The tick's claim: every due backup of a site that is backed up on schedule."""
    return backup_policy.claim_due(now, site_statuses=SCHEDULED)


def start_claimed_backups(now: datetime | None = None) -> dict[str, int]:
    """Start a backup operation for each policy the tick claimed (worker side)."""
    now = now or timezone.now()
    started = busy = dropped = 0
    for policy in backup_policy.claimed_policies():
        if not policy.enabled or policy.site.status not in CLAIMABLE:
            # Disabled, or the site was deleted (or failed) since the tick claimed it:
            # nothing to start. Its due times stay, so the tick claims it again if it
            # comes back.
            BackupPolicy.objects.filter(pk=policy.pk).update(
                db_claimed_at=None, files_claimed_at=None
            )
            dropped += 1
            continue
        kinds: list[str] = []
        if policy.db_claimed_at:
            kinds.append(BackupKind.DB)
        if policy.files_claimed_at:
            kinds.append(BackupKind.FILES)
        try:
            with transaction.atomic():
                start_site_backup(
                    policy.site, kinds=kinds, reason="scheduled", attempt=policy.failures + 1
                )
                if policy.db_claimed_at:
                    policy.next_db_at = backup_policy.next_db_due(policy, now)
                    policy.db_claimed_at = None
                if policy.files_claimed_at:
                    policy.next_files_at = backup_policy.next_files_due(policy, now)
                    policy.files_claimed_at = None
                policy.save(
                    update_fields=[
                        "next_db_at",
                        "db_claimed_at",
                        "next_files_at",
                        "files_claimed_at",
                    ]
                )
            started += 1
        except OperationConflict:
            busy += 1  # stays claimed: started by a later run once the site is free
    return {"started": started, "busy": busy, "dropped": dropped}


def watched_sites(user: User | None = None) -> QuerySet[Site]:
    """The sites the RPO applies to; only ``user``'s when given. Their secrets stay
    encrypted (deferred): nothing RPO needs them."""
    sites = Site.objects.for_user(user) if user is not None else Site.objects.all()
    return sites.filter(status__in=WATCHED).defer("db_password", "wp_salts")


def live_sites(user: User | None = None) -> list[Site]:
    """The sites the RPO applies to, as a list (one query)."""
    return list(watched_sites(user).select_related("tenant"))


def check_rpo() -> dict[str, int]:
    """Raise an Alert for each site past its RPO; resolve the others' (every 10 min)."""
    return backup_policy.check_rpo(live_sites())
