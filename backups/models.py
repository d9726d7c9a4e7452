"""Backups: what was taken, where it is, and whether it can be trusted."""

from __future__ import annotations

from datetime import time, timedelta

from django.conf import settings
from django.db import models

from farm.models import TenantScopedQuerySet


class BackupKind(models.TextChoices):
    DB = "db", "Site database"
    FILES = "files", "Site files"
    CONFIG = "config", "Site config"
    CLUSTER = "cluster", "Cluster database (physical)"


class BackupStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    FORGOTTEN = "forgotten", "Forgotten (retention)"


class BackupQuerySet(TenantScopedQuerySet):
    # Cluster backups have no site: only operators see them.
    tenant_path = "site__tenant"


class Backup(models.Model):
    Kind = BackupKind
    Status = BackupStatus

    site = models.ForeignKey(
        "sites.Site", null=True, blank=True, on_delete=models.PROTECT, related_name="backups"
    )
    kind = models.CharField(max_length=10, choices=BackupKind.choices)
    status = models.CharField(
        max_length=12, choices=BackupStatus.choices, default=BackupStatus.PENDING, db_index=True
    )
    reason = models.CharField(
        max_length=20, default="scheduled", help_text="scheduled, manual, safety, config-change"
    )
    operation = models.ForeignKey(
        "farm.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    snapshot_id = models.CharField(max_length=64, blank=True, db_index=True)
    repository = models.CharField(max_length=255, blank=True)
    bytes = models.BigIntegerField(null=True, blank=True)
    bytes_added = models.BigIntegerField(null=True, blank=True)
    files = models.BigIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    restic_version = models.CharField(max_length=40, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(
        default=dict, blank=True, help_text="Row counts, checksums and file hashes at backup time."
    )
    error = models.TextField(blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = BackupQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["site", "kind", "status"], name="backup_site_kind_idx"),
            # The repository page's newest cluster backups, without a scan of the others.
            models.Index(fields=["kind", "-created_at", "-id"], name="backup_kind_created_idx"),
            # The dashboard's backups of the last 24 hours by status, counted in the
            # index alone (created_at's own index would read every row's page).
            models.Index(fields=["created_at", "status"], name="backup_created_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.site or 'cluster'} ({self.status})"

    @property
    def duration(self) -> timedelta | None:
        return None if self.duration_ms is None else timedelta(milliseconds=self.duration_ms)

    @property
    def is_usable(self) -> bool:
        """Only a succeeded backup with a snapshot in the repository can be restored."""
        return self.status == BackupStatus.SUCCEEDED and bool(self.snapshot_id)


class BackupPolicy(models.Model):
    """When a site is backed up and how long snapshots are kept (reference defaults)."""

    site = models.OneToOneField("sites.Site", on_delete=models.CASCADE, related_name="policy")
    enabled = models.BooleanField(default=True)
    db_daily_at = models.TimeField(
        default=time(2, 0), help_text="Daily database backup (in TIME_ZONE)."
    )
    db_every_hours = models.PositiveSmallIntegerField(
        default=6, help_text="Also back the database up this often (the RPO target is 6 h)."
    )
    files_daily_at = models.TimeField(
        default=time(3, 0), help_text="Daily files backup (in TIME_ZONE)."
    )
    config_on_change = models.BooleanField(default=True)
    keep_daily = models.PositiveSmallIntegerField(default=7)
    keep_weekly = models.PositiveSmallIntegerField(default=4)
    keep_monthly = models.PositiveSmallIntegerField(default=6)
    next_db_at = models.DateTimeField(null=True, blank=True, db_index=True)
    next_files_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set by the scheduler tick when a kind falls due; cleared once its backup started.
    db_claimed_at = models.DateTimeField(null=True, blank=True)
    files_claimed_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveSmallIntegerField(
        default=0, help_text="Consecutive failed scheduled backups (for back-off)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "backup policies"

    def __str__(self) -> str:
        return f"Backup policy of {self.site}"


class RestoreScope(models.TextChoices):
    DB = "db", "Database"
    FILES = "files", "Files"
    BOTH = "both", "Database and files"


class RestoreTarget(models.TextChoices):
    IN_PLACE = "in_place", "In place"
    BESIDE = "beside", "Beside (a preview site)"


class RestoreStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Restored and verified"
    FAILED = "failed", "Failed"
    SWITCHED = "switched", "Switched to the preview"
    DISCARDED = "discarded", "Preview removed"


RTO_TARGET = timedelta(hours=1)
RPO_TARGET = timedelta(hours=6)


class RestoreQuerySet(TenantScopedQuerySet):
    tenant_path = "site__tenant"


class Restore(models.Model):
    """One restore, from the wizard or a drill, with its measured RTO."""

    Scope = RestoreScope
    Target = RestoreTarget
    Status = RestoreStatus

    site = models.ForeignKey("sites.Site", on_delete=models.PROTECT, related_name="restores")
    preview_site = models.ForeignKey(
        "sites.Site", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scope = models.CharField(max_length=10, choices=RestoreScope.choices)
    target = models.CharField(max_length=10, choices=RestoreTarget.choices)
    point_in_time = models.DateTimeField(help_text="The state the site is restored to.")
    db_snapshot_id = models.CharField(max_length=64, blank=True)
    files_snapshot_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=RestoreStatus.choices, default="running")
    operation = models.ForeignKey(
        "farm.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    safety_db_backup = models.ForeignKey(
        Backup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    safety_files_backup = models.ForeignKey(
        Backup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verification = models.JSONField(default=dict, blank=True)
    verified = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    is_drill = models.BooleanField(default=False, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rto_seconds = models.FloatField(null=True, blank=True, help_text="Confirm to verified.")
    switched_at = models.DateTimeField(null=True, blank=True)

    objects = RestoreQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Restore #{self.pk} of {self.site} ({self.get_target_display().lower()})"

    @property
    def rto(self) -> timedelta | None:
        return None if self.rto_seconds is None else timedelta(seconds=self.rto_seconds)

    @property
    def within_rto_target(self) -> bool | None:
        return None if self.rto is None else self.rto <= RTO_TARGET

    def can_switch(self) -> bool:
        return (
            self.target == RestoreTarget.BESIDE
            and self.status == RestoreStatus.SUCCEEDED
            and self.preview_site_id is not None
            and not self.is_drill
        )


class RepositoryCheck(models.Model):
    """A `restic check --read-data-subset` run: the repository's data really reads back."""

    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    read_data_subset = models.CharField(max_length=20, blank=True)
    ok = models.BooleanField(default=False)
    seconds = models.FloatField(null=True, blank=True)
    output = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"check {self.read_data_subset} {'ok' if self.ok else 'FAILED'}"


class RepositorySnapshot(models.Model):
    """A snapshot that is in the repository, as the worker last listed it.

    The RPO check lists the repository (``restic snapshots``) every 10 minutes and
    records the listing here, so that pages read this table and never wait on restic.
    ``bytes`` is the size the panel recorded for the snapshot (restic 0.14 lists none).
    """

    snapshot_id = models.CharField(max_length=64, unique=True)
    short_id = models.CharField(max_length=16)
    # The site the snapshot's tags name; no constraint: the repository may hold
    # snapshots of a site the panel no longer has a row of.
    site = models.ForeignKey(
        "sites.Site",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    kind = models.CharField(max_length=10, blank=True)
    time = models.DateTimeField()
    bytes = models.BigIntegerField(null=True, blank=True)
    listed_at = models.DateTimeField()

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["site", "kind", "-time"], name="repo_snapshot_site_idx")]

    def __str__(self) -> str:
        return f"{self.kind} snapshot {self.short_id} of site {self.site_id}"


class SiteRpo(models.Model):
    """One site's row of the RPO ledger, as the last RPO check measured it in the
    repository: what the ledger page and a site's RPO badge read."""

    site = models.OneToOneField(
        "sites.Site", primary_key=True, on_delete=models.CASCADE, related_name="rpo"
    )
    newest_db = models.DateTimeField(null=True, blank=True, db_index=True)
    newest_files = models.DateTimeField(null=True, blank=True)
    snapshots = models.PositiveIntegerField(default=0)
    drops = models.JSONField(
        default=list, blank=True, help_text="Size drops of more than half, newest last."
    )
    checked_at = models.DateTimeField()

    class Meta:
        verbose_name = "site RPO"
        verbose_name_plural = "site RPOs"

    def __str__(self) -> str:
        return f"RPO of site {self.site_id}"
