"""Every change people (and schedules) make to backups and restores."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from backups import restic
from backups.models import BackupKind, BackupPolicy, Restore, RestoreScope, RestoreTarget
from backups.restore_steps import PREVIEW_PREFIX, create_preview_site
from backups.schedule import claimed_policies, next_db_due, next_files_due
from farm import audit
from farm.errors import FarmError, OperationConflict, QuotaExceeded
from farm.models import Operation, Tenant, User
from farm.models.tenancy import can_change_tenant
from farm.operations import start_operation
from nodes.capacity import check_room_for_site
from sites.models import LIVE_STATUSES, Site, SiteStatus

logger = logging.getLogger(__name__)
ALL_KINDS: list[str] = [BackupKind.DB, BackupKind.FILES, BackupKind.CONFIG]
# A claimed site in one of these is backed up (a restoring one once its restore ends).
CLAIMABLE = (SiteStatus.ACTIVE, SiteStatus.SUSPENDED, SiteStatus.RESTORING)


def _require_change(actor: User, site: Site) -> None:
    if not can_change_tenant(actor, site.tenant_id):
        raise PermissionDenied("Only the tenant's owners and operators can do this.")


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
    _require_change(actor, site)
    if not site.can_back_up():
        raise FarmError(f"A {site.get_status_display().lower()} site cannot be backed up.")
    with transaction.atomic():
        operation = start_site_backup(site, kinds=list(ALL_KINDS), reason="manual", actor=actor)
        audit.record("backup.now", actor=actor, target=site, request=request)
    return operation


def start_claimed_backups(now: datetime | None = None) -> dict[str, int]:
    """Start a backup operation for each policy the tick claimed (worker side)."""
    now = now or timezone.now()
    started = busy = dropped = 0
    for policy in claimed_policies():
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
                    policy.next_db_at = next_db_due(policy, now)
                    policy.db_claimed_at = None
                if policy.files_claimed_at:
                    policy.next_files_at = next_files_due(policy, now)
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


def _snapshot_for(site: Site, kind: str, at: datetime) -> restic.Snapshot | None:
    """The newest snapshot of ``kind`` taken at or before ``at``."""
    repo = restic.repository_from_settings()
    candidates = [
        s for s in restic.snapshots(repo, tags={"site": str(site.pk), "kind": kind}) if s.time <= at
    ]
    return max(candidates, key=lambda s: s.time, default=None)


def start_restore(
    *,
    site: Site,
    point_in_time: datetime,
    scope: str,
    target: str,
    actor: User | None,
    confirm_domain: str = "",
    drill: bool = False,
    request: HttpRequest | None = None,
) -> Restore:
    """Record the restore and start its operation (holding the site's lock)."""
    if actor is not None:
        _require_change(actor, site)
    if not drill and confirm_domain.strip().lower() not in (
        site.domain,
        site.display_domain.lower(),
    ):
        raise FarmError("Type the site's domain exactly to confirm.")
    if scope not in RestoreScope.values or target not in RestoreTarget.values:
        raise FarmError("Choose what to restore and where.")
    if not site.can_restore():
        raise FarmError(f"A {site.get_status_display().lower()} site cannot be restored.")
    db = _snapshot_for(site, BackupKind.DB, point_in_time) if scope != "files" else None
    files = _snapshot_for(site, BackupKind.FILES, point_in_time) if scope != "db" else None
    if scope != "files" and db is None:
        raise FarmError("There is no database snapshot at or before that time.")
    if scope != "db" and files is None:
        raise FarmError("There is no files snapshot at or before that time.")
    kind = "restore.drill" if drill else "restore.site"
    with transaction.atomic():
        if target == RestoreTarget.BESIDE:
            _check_room_for_preview(site, drill=drill)
        restore = Restore.objects.create(
            site=site,
            scope=scope,
            target=target,
            point_in_time=point_in_time,
            db_snapshot_id=db.id if db else "",
            files_snapshot_id=files.id if files else "",
            is_drill=drill,
            requested_by=actor,
        )
        operation = start_operation(
            kind,
            target_type="restore",
            target_id=restore.pk,
            target_repr=f"{site.domain} ({restore.get_target_display().lower()})",
            tenant=site.tenant,
            actor=actor,
            lock_name=f"site:{site.pk}",
        )
        restore.operation = operation
        if target == RestoreTarget.BESIDE:
            # Made now, holding the tenant's lock: from this moment the preview is one
            # of the tenant's live sites (quota, capacity, its unguessable name).
            restore.preview_site = create_preview_site(restore)
        restore.save(update_fields=["operation", "preview_site"])
        if actor is not None:
            audit.record(
                "restore.start",
                actor=actor,
                target=site,
                request=request,
                data={
                    "restore": restore.pk,
                    "scope": scope,
                    "target": target,
                    "point_in_time": point_in_time.isoformat(),
                    "drill": drill,
                },
            )
    return restore


def _check_room_for_preview(site: Site, *, drill: bool) -> None:
    """A preview is a live site: it counts against the tenant's quota and needs room
    on a worker. Drills are exempt from the quota only: the farm starts them and
    removes their preview at the end (it still counts while it exists)."""
    tenant = Tenant.objects.select_for_update().get(pk=site.tenant_id)
    live = Site.objects.filter(tenant=tenant, status__in=LIVE_STATUSES).count()
    if not drill and live >= tenant.site_quota:
        raise QuotaExceeded(
            f"{tenant.name} already has {live} of its {tenant.site_quota} sites, and a "
            "restore beside needs one more for its preview. Restore in place, delete a "
            "site (or an old preview), or ask an operator to raise the quota."
        )
    check_room_for_site(cache_enabled=site.cache_enabled, live=Site.objects.live_counts())


def switch_to_preview(
    *, restore: Restore, actor: User, request: HttpRequest | None = None
) -> Operation:
    _require_change(actor, restore.site)
    if not restore.can_switch():
        raise FarmError("Only a verified restore beside can be switched to.")
    with transaction.atomic():
        operation = start_operation(
            "restore.switch",
            target_type="restore",
            target_id=restore.pk,
            target_repr=f"{restore.site.domain} → preview",
            tenant=restore.site.tenant,
            actor=actor,
            lock_name=f"site:{restore.site_id}",
        )
        audit.record(
            "restore.switch",
            actor=actor,
            target=restore.site,
            request=request,
            data={"restore": restore.pk},
        )
    return operation


def run_drills(sample: int) -> list[int]:
    """Restore a random sample of active sites beside, to measure the real RTO."""
    candidates = list(
        Site.objects.filter(status=SiteStatus.ACTIVE)
        .exclude(domain__startswith=PREVIEW_PREFIX)
        .values_list("pk", flat=True)
    )
    started = []
    for site_id in random.sample(candidates, min(sample, len(candidates))):
        site = Site.objects.get(pk=site_id)
        try:
            restore = start_restore(
                site=site,
                point_in_time=timezone.now(),
                scope=RestoreScope.BOTH,
                target=RestoreTarget.BESIDE,
                actor=None,
                drill=True,
            )
        except FarmError as exc:
            logger.warning("drill of %s not started: %s", site.domain, exc.message)
            continue
        started.append(restore.pk)
    return started


def purge_site_backups(site: Site, log: Callable[[str], None]) -> int:
    """Forget every snapshot of the site (operators only, when deleting with purge)."""
    from backups.models import Backup, BackupStatus

    repo = restic.repository_from_settings()
    ids = [s.id for s in restic.snapshots(repo, tags={"site": str(site.pk)})]
    if ids:
        restic.forget(repo, ids, prune=True)
    Backup.objects.filter(site=site).update(status=BackupStatus.FORGOTTEN)
    log(f"forgot {len(ids)} snapshot(s) of {site.domain} and pruned the repository")
    return len(ids)
