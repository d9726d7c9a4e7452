"""The steps that back a site up: the policy at provision, a config snapshot whenever
the site's spec changes, and the database, files and config of a backup operation.
The engines (``backups.mariadb``, ``backups.restic``) take the site as plain values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils import timezone

from backups import restic
from backups.mariadb import back_up_database
from backups.models import Backup, BackupKind, BackupPolicy
from backups.policy import first_due_times
from farm.errors import FarmError
from farm.operations import Step, StepContext
from sites import files
from sites.models import Site
from sites.stack import build_spec
from sites.steps.base import SiteStep
from sites.swarm_site import site_db_host


def site_ref(site: Site) -> restic.SiteRef:
    return restic.SiteRef(id=site.pk, tenant_slug=site.tenant.slug, stack=site.stack_name)


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


def backup_site_db(
    site: Site, *, reason: str, operation_id: int | None, log: Callable[[str], None]
) -> Backup:
    return back_up_database(
        site_ref(site), site.db_name, reason=reason, operation_id=operation_id, log=log
    )


def backup_site_files(
    site: Site, *, reason: str, operation_id: int | None, log: Callable[[str], None]
) -> Backup:
    return restic.back_up_directory(
        site_ref(site),
        files.site_path(site.pk),
        reason=reason,
        operation_id=operation_id,
        log=log,
    )


def backup_site_config(
    site: Site, *, reason: str, operation_id: int | None, log: Callable[[str], None]
) -> Backup:
    return restic.back_up_config(
        site_ref(site),
        lambda: site_config(site),
        reason=reason,
        operation_id=operation_id,
        log=log,
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


class BackupSchedule(SiteStep):
    name = "backups"
    label = "Create the backup policy, snapshot the config"

    def run(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        policy, created = BackupPolicy.objects.get_or_create(site=site)
        if created or policy.next_db_at is None:
            policy.next_db_at, policy.next_files_at = first_due_times(policy, timezone.now())
            policy.save(update_fields=["next_db_at", "next_files_at"])
        ctx.log(
            f"{'created' if created else 'kept'} the policy: database daily at "
            f"{policy.db_daily_at:%H:%M} and every {policy.db_every_hours} h, files daily "
            f"at {policy.files_daily_at:%H:%M}; keep {policy.keep_daily} daily, "
            f"{policy.keep_weekly} weekly, {policy.keep_monthly} monthly"
        )
        back_up_config(site, ctx)  # config on change: a new or repaired site's spec

    def undo(self, ctx: StepContext) -> None:
        deleted, _ = BackupPolicy.objects.filter(site=self.site(ctx)).delete()
        ctx.log("removed the backup policy" if deleted else "no backup policy")


def back_up_config(site: Site, ctx: StepContext) -> None:
    """Config on change: snapshot the site's spec. Best effort: the site works either
    way, and a failed config backup is recorded (and alerted) like any backup."""
    policy = BackupPolicy.objects.filter(site=site).first()
    if policy is not None and not policy.config_on_change:
        ctx.log("config backups on change are off for this site")
        return
    try:
        backup_site_config(site, reason="config-change", operation_id=ctx.operation.pk, log=ctx.log)
    except FarmError as exc:
        ctx.log(f"the config backup failed ({exc.message}); the next backup will take it")


class ConfigBackup(SiteStep):
    name = "config_backup"
    label = "Snapshot the site's config"

    def run(self, ctx: StepContext) -> None:
        back_up_config(self.site(ctx), ctx)
