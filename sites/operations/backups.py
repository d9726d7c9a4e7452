"""The operation kind that backs a site up: its database, files and config into restic."""

from __future__ import annotations

from django.utils import timezone

from backups import policy
from backups.models import BackupKind
from farm.models import Operation
from farm.operations import register_kind
from monitoring.alerts import raise_alert, resolve_alert
from sites import steps
from sites.operations.base import SiteKind


def backup_alert_fingerprint(site_id: int) -> str:
    return f"backup-failed-site-{site_id}"


@register_kind
class BackUpSite(SiteKind):
    name = "backup.site"
    label = "Back up"
    steps = (
        steps.SiteBackupStep(BackupKind.DB, "Database: mariadb-dump into restic"),
        steps.SiteBackupStep(BackupKind.FILES, "Files: the site directory into restic"),
        steps.SiteBackupStep(BackupKind.CONFIG, "Config: the site's spec as JSON"),
    )

    def on_succeeded(self, operation: Operation) -> None:
        policy.note_backup_succeeded(int(operation.target_id))
        resolve_alert(backup_alert_fingerprint(int(operation.target_id)))

    def on_failed(self, operation: Operation) -> None:
        site = self.get_target(operation)
        retry_note = ""
        if operation.params.get("reason") == "scheduled":
            retry_at = policy.note_scheduled_backup_failed(
                site.pk, operation.params.get("kinds", []), timezone.now()
            )
            if retry_at is not None:
                retry_note = f" Retrying at {retry_at:%H:%M}."
        raise_alert(
            fingerprint=backup_alert_fingerprint(site.pk),
            name="BackupFailed",
            severity="critical",
            site_id=site.pk,
            tenant_id=site.tenant_id,
            source="backup",
            summary=f"Backup of {site.domain} failed",
            description=operation.error + retry_note,
        )
