"""A Backup row around every snapshot, and the site backups that need nothing but plain
values: a directory, a config document. A row says ``succeeded`` only once restic
reported the snapshot; a failed dump never leaves a snapshot (``backup_stream`` kills
restic before it can write one)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from backups.models import Backup, BackupKind, BackupStatus
from backups.restic import commands
from backups.restic.cli import Repository, Summary
from backups.restic.manifests import write_manifest
from backups.restic.repository import ensure_repository, repository_from_settings, restic_version
from farm.errors import FarmError

MANIFEST_NAME = ".farm-manifest.json"


@dataclass(frozen=True)
class SiteRef:
    """What backups needs to know of a site to name, tag and stage its snapshots."""

    id: int
    tenant_slug: str
    stack: str  # "wp-<id>": the staging paths are named after it


def staging_dir(purpose: str, site: SiteRef) -> Path:
    path = Path(settings.VAR_DIR) / "backup-staging" / purpose / site.stack
    path.mkdir(parents=True, exist_ok=True)
    return path


def site_tags(site: SiteRef, kind: str) -> dict[str, str]:
    return {"site": str(site.id), "kind": kind, "tenant": site.tenant_slug}


def run_backup(
    *,
    site: SiteRef | None,
    kind: str,
    reason: str,
    operation_id: int | None,
    log: Callable[[str], None],
    take: Callable[[Repository, Backup], tuple[Summary, dict[str, Any]]],
) -> Backup:
    """Record a Backup row around ``take`` (which makes the snapshot)."""
    repo = repository_from_settings()
    backup = Backup.objects.create(
        site_id=site.id if site else None,
        kind=kind,
        reason=reason,
        status=BackupStatus.RUNNING,
        operation_id=operation_id,
        started_at=timezone.now(),
        repository=repo.url,
        restic_version=restic_version(),
    )
    started = time.monotonic()
    try:
        ensure_repository(repo)
        summary, manifest = take(repo, backup)
    except FarmError as exc:
        Backup.objects.filter(pk=backup.pk).update(
            status=BackupStatus.FAILED,
            error=exc.message,
            finished_at=timezone.now(),
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        log(f"{kind} backup failed: {exc.message}")
        raise
    Backup.objects.filter(pk=backup.pk).update(
        status=BackupStatus.SUCCEEDED,
        snapshot_id=summary.snapshot_id,
        bytes=summary.total_bytes,
        bytes_added=summary.bytes_added,
        files=summary.files,
        manifest=manifest,
        finished_at=timezone.now(),
        duration_ms=int((time.monotonic() - started) * 1000),
        tags=site_tags(site, kind) if site else {"kind": kind},
    )
    backup.refresh_from_db()
    log(
        f"{kind} backup {summary.snapshot_id[:8]}: {summary.total_bytes / 1e6:.1f} MB, "
        f"{summary.bytes_added / 1e6:.1f} MB new, {summary.files} file(s), "
        f"{summary.duration_s:.1f} s"
    )
    return backup


def back_up_directory(
    site: SiteRef,
    directory: Path,
    *,
    reason: str,
    operation_id: int | None,
    log: Callable[[str], None],
) -> Backup:
    """The site's files: ``directory`` and a marker naming it, into restic."""

    def take(repo: Repository, backup: Backup) -> tuple[Summary, dict[str, Any]]:
        if not directory.is_dir() or directory.is_symlink():
            raise FarmError(f"{directory} does not exist; nothing to back up.")
        # No listing of the files is taken here: one taken before restic reads them
        # would disagree with the snapshot whenever the site writes meanwhile. A
        # restore compares with the snapshot's own listing (restic ls). The marker
        # names the site directory; a stable path per site, because restic's
        # retention groups snapshots by their paths.
        manifest_path = staging_dir("manifests", site) / MANIFEST_NAME
        write_manifest(manifest_path, {"root": str(directory), "listing": "restic ls"})
        summary = commands.backup_paths(
            repo,
            [directory, manifest_path],
            tags={**site_tags(site, BackupKind.FILES), "backup": str(backup.pk)},
        )
        return summary, {
            "root": str(directory),
            "files": summary.files,
            "manifest_path": str(manifest_path),
        }

    return run_backup(
        site=site,
        kind=BackupKind.FILES,
        reason=reason,
        operation_id=operation_id,
        log=log,
        take=take,
    )


def back_up_config(
    site: SiteRef,
    config: Callable[[], dict[str, Any]],
    *,
    reason: str,
    operation_id: int | None,
    log: Callable[[str], None],
) -> Backup:
    """The site's spec: the JSON document ``config()`` returns, as ``site.json``."""

    def take(repo: Repository, backup: Backup) -> tuple[Summary, dict[str, Any]]:
        path = staging_dir("config", site) / "site.json"
        path.write_text(json.dumps(config(), indent=2))
        summary = commands.backup_paths(
            repo, [path], tags={**site_tags(site, BackupKind.CONFIG), "backup": str(backup.pk)}
        )
        return summary, {}

    return run_backup(
        site=site,
        kind=BackupKind.CONFIG,
        reason=reason,
        operation_id=operation_id,
        log=log,
        take=take,
    )
