"""The changes people and schedules make by restoring a site: start a restore (in place
or beside), switch a site to its verified preview, start the daily drills."""

from __future__ import annotations

import logging
import random
from datetime import datetime

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from backups import policy, restic
from backups.models import BackupKind, Restore, RestoreScope, RestoreTarget
from farm import audit
from farm.errors import FarmError, QuotaExceeded
from farm.models import Operation, Tenant, User
from farm.operations import start_operation
from farm.permissions import require_change
from nodes.capacity import check_room_for_site
from sites.confirm import check_typed_domain
from sites.models import LIVE_STATUSES, Site, SiteStatus
from sites.steps import PREVIEW_PREFIX, create_preview_site

logger = logging.getLogger(__name__)


def _snapshot_for(site: Site, kind: str, at: datetime) -> restic.Snapshot | None:
    """The newest snapshot of ``kind`` taken at or before ``at``."""
    return policy.snapshot_at(site.pk, kind, at)


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
        require_change(actor, site.tenant_id)
    if not drill:
        check_typed_domain(site, confirm_domain)
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
    require_change(actor, restore.site.tenant_id)
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
