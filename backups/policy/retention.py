"""Retention: forget snapshots by each site's policy, then prune once for the repository."""

from __future__ import annotations

import logging

from backups import restic
from backups.models import Backup, BackupKind, BackupPolicy, BackupStatus, RepositorySnapshot

logger = logging.getLogger(__name__)


def apply_retention(*, prune: bool = True) -> dict[str, int]:
    repo = restic.repository_from_settings()
    removed: list[str] = []
    for policy in BackupPolicy.objects.select_related("site"):
        for kind in (BackupKind.DB, BackupKind.FILES, BackupKind.CONFIG):
            removed += restic.forget_by_policy(
                repo,
                tags={"site": str(policy.site_id), "kind": kind},
                keep_daily=policy.keep_daily,
                keep_weekly=policy.keep_weekly,
                keep_monthly=policy.keep_monthly,
                prune=False,
            )
    if removed:
        Backup.objects.filter(snapshot_id__in=removed).update(status=BackupStatus.FORGOTTEN)
        # Not offered as a restore point until the next listing would drop it.
        RepositorySnapshot.objects.filter(snapshot_id__in=removed).delete()
        if prune:
            restic.prune(repo)  # one prune for the whole repository: it rewrites packs
    logger.info("retention forgot %d snapshot(s)", len(removed))
    return {"forgotten": len(removed)}


def forget_site_snapshots(site_id: int) -> int:
    """Forget every snapshot of the site and prune (operators only, when deleting with
    purge); returns how many were forgotten."""
    repo = restic.repository_from_settings()
    ids = [s.id for s in restic.snapshots(repo, tags={"site": str(site_id)})]
    if ids:
        restic.forget(repo, ids, prune=True)
    Backup.objects.filter(site_id=site_id).update(status=BackupStatus.FORGOTTEN)
    RepositorySnapshot.objects.filter(snapshot_id__in=ids).delete()
    return len(ids)
