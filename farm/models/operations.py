"""Operations: every long action, as an ordered list of recorded steps.

The rows are the engine's memory. A worker that dies mid-step leaves the
operation ``running`` with a heartbeat that stops moving; the next delivery
claims it once the lease has run out and resumes at the first step that did
not finish. ``lock_key`` enforces, in the database, at most one unfinished
operation per target: it holds ``"<type>:<id>"`` while the operation is
queued or running and NULL otherwise, and it is UNIQUE (NULLs never collide,
on SQLite and on MariaDB alike, which has no partial indexes).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

from farm.models.tenancy import TenantScopedQuerySet

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager


class OperationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    ROLLED_BACK = "rolled_back", "Rolled back"


UNFINISHED = (OperationStatus.QUEUED, OperationStatus.RUNNING)


class OperationMode(models.TextChoices):
    FORWARD = "forward", "Forward"
    ROLLBACK = "rollback", "Roll back"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"
    UNDOING = "undoing", "Undoing"
    UNDONE = "undone", "Undone"


class OperationQuerySet(TenantScopedQuerySet):
    tenant_path = "tenant"

    def unfinished(self) -> OperationQuerySet:
        return self.filter(status__in=UNFINISHED)

    def for_target(self, target_type: str, target_id: object) -> OperationQuerySet:
        return self.filter(target_type=target_type, target_id=str(target_id))

    def stale(self, *, lease_seconds: int) -> OperationQuerySet:
        """Running operations whose worker has stopped beating."""
        cutoff = timezone.now() - timedelta(seconds=lease_seconds)
        return self.filter(status=OperationStatus.RUNNING, heartbeat_at__lt=cutoff)


class Operation(models.Model):
    Status = OperationStatus
    Mode = OperationMode

    kind = models.CharField(max_length=60, db_index=True)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=255, blank=True)
    tenant = models.ForeignKey(
        "farm.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="operations"
    )
    lock_key = models.CharField(
        max_length=120,
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="Set while unfinished: one unfinished operation per target.",
    )
    lock_name = models.CharField(
        max_length=120,
        blank=True,
        editable=False,
        help_text="What this operation locks while unfinished (usually its target).",
    )
    status = models.CharField(
        max_length=20, choices=OperationStatus.choices, default=OperationStatus.QUEUED
    )
    mode = models.CharField(
        max_length=10, choices=OperationMode.choices, default=OperationMode.FORWARD
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="operations",
    )
    params = models.JSONField(default=dict, blank=True)
    state = models.JSONField(
        default=dict, blank=True, help_text="What finished steps found or made, for later steps."
    )
    error = models.TextField(blank=True)
    retryable = models.BooleanField(default=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=120, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    objects = OperationQuerySet.as_manager()

    if TYPE_CHECKING:
        steps: RelatedManager[OperationStep]

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="operation_target_idx"),
            models.Index(fields=["status", "heartbeat_at"], name="operation_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} on {self.target_repr or self.target_key}"

    @property
    def target_key(self) -> str:
        return f"{self.target_type}:{self.target_id}"

    @property
    def is_finished(self) -> bool:
        return self.status not in UNFINISHED

    @property
    def status_label(self) -> str:
        if self.status == OperationStatus.RUNNING and self.mode == OperationMode.ROLLBACK:
            return "Rolling back"
        if self.status == OperationStatus.QUEUED and self.mode == OperationMode.ROLLBACK:
            return "Queued to roll back"
        if self.status == OperationStatus.FAILED and self.mode == OperationMode.ROLLBACK:
            return "Roll back failed"
        if self.status == OperationStatus.RUNNING and self.cancel_requested:
            return "Cancelling"
        return self.get_status_display()

    @property
    def lock(self) -> str:
        """What this operation locks while unfinished (a restore locks its site)."""
        return self.lock_name or self.target_key

    @property
    def is_restartable(self) -> bool:
        return self.status in (OperationStatus.FAILED, OperationStatus.CANCELLED)

    def superseded_by(self) -> Operation | None:
        """The first operation started after this one on the same lock, if any.

        Retrying or rolling back an operation that is no longer the latest on its
        lock would act on a state that has moved on: an old failed provision's
        undo would drop the database of the site a repair has since made active.
        """
        same_lock = models.Q(lock_name=self.lock)
        target_type, _, target_id = self.lock.partition(":")
        if target_type and target_id:  # rows made before lock_name existed
            same_lock |= models.Q(lock_name="", target_type=target_type, target_id=target_id)
        return (
            Operation.objects.filter(same_lock, pk__gt=self.pk)
            .only("pk", "kind", "status", "mode", "cancel_requested")
            .order_by("pk")
            .first()
        )

    def superseded_reason(self, later: Operation | None = None) -> str:
        later = later or self.superseded_by()
        if later is None:
            return ""
        return (
            f"{later.kind} #{later.pk} was started on {self.target_repr or self.target_key} "
            "after this operation, so retrying or rolling this one back could undo what "
            "it did. Start a new operation instead."
        )

    def can_retry(self) -> bool:
        return self.is_restartable and self.superseded_by() is None

    def can_roll_back(self) -> bool:
        from farm.operations import registered_kinds

        kind = registered_kinds().get(self.kind)
        return (
            self.is_restartable
            and (kind is None or kind.reversible)
            and self.superseded_by() is None
        )

    def can_cancel(self) -> bool:
        return self.status in UNFINISHED and not self.cancel_requested

    @property
    def duration(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class OperationStep(models.Model):
    Status = StepStatus

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=60)
    label = models.CharField(max_length=120)
    status = models.CharField(max_length=12, choices=StepStatus.choices, default="pending")
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    log = models.TextField(blank=True, default="")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["operation_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "position"], name="one_step_per_position"),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.label} ({self.status})"

    @property
    def is_done(self) -> bool:
        return self.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)

    @property
    def log_lines(self) -> list[str]:
        return self.log.splitlines()
