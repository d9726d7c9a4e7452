"""Steps of backup operations. A Backup row is written for every attempt, and it says
``succeeded`` only once restic reported the snapshot; a failed dump never leaves a
snapshot (backups.restic.backup_stream kills restic before it can write one)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from backups import dumps, restic
from backups.manifests import write_manifest
from backups.models import Backup, BackupKind, BackupStatus
from farm.errors import FarmError
from farm.operations import Step, StepContext
from nodes import mariadb
from sites import files
from sites.models import Site
from sites.stack import build_spec
from sites.swarm_site import site_db_host

MANIFEST_NAME = ".farm-manifest.json"
DB_FILENAME = "database.sql"


def staging_dir(purpose: str, site: Site) -> Path:
    path = Path(settings.VAR_DIR) / "backup-staging" / purpose / site.stack_name
    path.mkdir(parents=True, exist_ok=True)
    return path


def site_tags(site: Site, kind: str) -> dict[str, str]:
    return {"site": str(site.pk), "kind": kind, "tenant": site.tenant.slug}


def run_backup(
    *,
    site: Site | None,
    kind: str,
    reason: str,
    operation_id: int | None,
    log: Callable[[str], None],
    take: Callable[[restic.Repository, Backup], tuple[restic.Summary, dict[str, Any]]],
) -> Backup:
    """Record a Backup row around ``take`` (which makes the snapshot)."""
    repo = restic.repository_from_settings()
    backup = Backup.objects.create(
        site=site,
        kind=kind,
        reason=reason,
        status=BackupStatus.RUNNING,
        operation_id=operation_id,
        started_at=timezone.now(),
        repository=repo.url,
        restic_version=restic.restic_version(),
    )
    started = time.monotonic()
    try:
        restic.ensure_repository(repo)
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


def backup_site_db(
    site: Site, *, reason: str, operation_id: int | None, log: Callable[[str], None]
) -> Backup:
    def take(repo: restic.Repository, backup: Backup) -> tuple[restic.Summary, dict[str, Any]]:
        summary, tables = dumps.consistent_db_backup(
            mariadb.admin_endpoint(),
            site.db_name,
            repo,
            tags={**site_tags(site, BackupKind.DB), "backup": str(backup.pk)},
            filename=DB_FILENAME,
        )
        return summary, {"database": site.db_name, "tables": tables}

    return run_backup(
        site=site, kind=BackupKind.DB, reason=reason, operation_id=operation_id, log=log, take=take
    )


def backup_site_files(
    site: Site, *, reason: str, operation_id: int | None, log: Callable[[str], None]
) -> Backup:
    directory = files.site_path(site.pk)

    def take(repo: restic.Repository, backup: Backup) -> tuple[restic.Summary, dict[str, Any]]:
        if not directory.is_dir() or directory.is_symlink():
            raise FarmError(f"{directory} does not exist; nothing to back up.")
        # No listing of the files is taken here: one taken before restic reads them
        # would disagree with the snapshot whenever the site writes meanwhile. A
        # restore compares with the snapshot's own listing (restic ls). The marker
        # names the site directory; a stable path per site, because restic's
        # retention groups snapshots by their paths.
        manifest_path = staging_dir("manifests", site) / MANIFEST_NAME
        write_manifest(manifest_path, {"root": str(directory), "listing": "restic ls"})
        summary = restic.backup_paths(
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


def site_config(site: Site) -> dict[str, Any]:
    """The site's spec as JSON: everything needed to recreate its stack (no secrets)."""
    spec = build_spec(site, db_host=site_db_host())
    return {
        "site": {
            "id": site.pk,
            "domain": site.domain,
            "tenant": site.tenant.slug,
            "status": site.status,
            "image_choice": site.image_choice,
            "cache_enabled": site.cache_enabled,
            "db_name": site.db_name,
            "network_shard": site.network_shard,
        },
        "stack": spec.stack,
        "services": [{"name": s.name, "image": s.image, "labels": s.labels} for s in spec.services],
        "wp_config": spec.wp_config.content,
        "nginx_conf": spec.nginx_conf.content,
        "taken_at": timezone.now().isoformat(),
    }


def backup_site_config(
    site: Site, *, reason: str, operation_id: int | None, log: Callable[[str], None]
) -> Backup:
    def take(repo: restic.Repository, backup: Backup) -> tuple[restic.Summary, dict[str, Any]]:
        path = staging_dir("config", site) / "site.json"
        path.write_text(json.dumps(site_config(site), indent=2))
        summary = restic.backup_paths(
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


KIND_FUNCTIONS: dict[str, Callable[..., Backup]] = {
    BackupKind.DB: backup_site_db,
    BackupKind.FILES: backup_site_files,
    BackupKind.CONFIG: backup_site_config,
}


class SiteBackupStep(Step):
    """Back up one kind of a site, when the operation asked for that kind."""

    def __init__(self, kind: str, label: str) -> None:
        self.kind = kind
        self.name = kind  # type: ignore[misc]
        self.label = label  # type: ignore[misc]

    def run(self, ctx: StepContext) -> None:
        if self.kind not in ctx.params.get("kinds", []):
            ctx.skip(f"no {self.kind} backup was asked for")
        site: Site = ctx.refresh_target()
        backup = KIND_FUNCTIONS[self.kind](
            site,
            reason=ctx.params.get("reason", "manual"),
            operation_id=ctx.operation.pk,
            log=ctx.log,
        )
        ctx.state.setdefault("backups", {})[self.kind] = backup.pk
