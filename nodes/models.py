"""Swarm nodes, as last seen through the Swarm API (the Swarm is the truth)."""

from __future__ import annotations

from django.db import models


class NodeRole(models.TextChoices):
    MANAGER = "manager", "Manager"
    WORKER = "worker", "Worker"


class NodeStatus(models.TextChoices):
    READY = "ready", "Ready"
    DOWN = "down", "Down"
    DISCONNECTED = "disconnected", "Disconnected"
    UNKNOWN = "unknown", "Unknown"
    GONE = "gone", "Gone from the swarm"


class NodeAvailability(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSE = "pause", "Paused"
    DRAIN = "drain", "Drained"


class NodeReachability(models.TextChoices):
    """A manager's Raft reachability as Swarm reports it (``ManagerStatus.Reachability``)."""

    REACHABLE = "reachable", "Reachable"
    UNREACHABLE = "unreachable", "Unreachable"
    UNKNOWN = "unknown", "Unknown"


class Node(models.Model):
    Role = NodeRole
    Status = NodeStatus
    Availability = NodeAvailability
    Reachability = NodeReachability

    swarm_id = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=255)
    role = models.CharField(max_length=10, choices=NodeRole.choices, default=NodeRole.WORKER)
    is_leader = models.BooleanField(default=False)
    status = models.CharField(max_length=15, choices=NodeStatus.choices, default="unknown")
    status_message = models.CharField(max_length=255, blank=True)
    # When ``status`` last took its present value (set by the sync, not on every sync).
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # Blank for a worker: only managers have a Raft reachability.
    reachability = models.CharField(max_length=12, choices=NodeReachability.choices, blank=True)
    availability = models.CharField(
        max_length=10, choices=NodeAvailability.choices, default=NodeAvailability.ACTIVE
    )
    address = models.CharField(max_length=64, blank=True)
    engine_version = models.CharField(max_length=40, blank=True)
    cpus = models.DecimalField(max_digits=6, decimal_places=2, default=0)
    memory_bytes = models.BigIntegerField(default=0)
    labels = models.JSONField(default=dict, blank=True)
    farm_roles = models.JSONField(
        default=list, blank=True, help_text="From the farm.role.* labels: edge, worker, db."
    )
    # What Swarm's running tasks on this node reserve (nodes.inventory.sync_nodes), and
    # the sites those tasks belong to; None until the first sync.
    reserved_cpus = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    reserved_memory_bytes = models.BigIntegerField(null=True, blank=True)
    seen_site_ids = models.JSONField(default=list, blank=True)
    droplet_id = models.BigIntegerField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname

    @property
    def memory_gib(self) -> float:
        return round(self.memory_bytes / 1024**3, 1)

    @property
    def reserved_memory_gib(self) -> float | None:
        if self.reserved_memory_bytes is None:
            return None
        return round(self.reserved_memory_bytes / 1024**3, 1)

    @property
    def site_count(self) -> int:
        """Sites with a running task here, as of the last sync; none once it has left
        the Swarm (node.remove marks it gone without waiting for a sync)."""
        return 0 if self.status == NodeStatus.GONE else len(self.seen_site_ids)

    def is_schedulable(self) -> bool:
        return self.status == NodeStatus.READY and self.availability == NodeAvailability.ACTIVE

    def can_drain(self) -> bool:
        return self.status == NodeStatus.READY and self.availability != NodeAvailability.DRAIN

    def can_activate(self) -> bool:
        return self.status != NodeStatus.GONE and self.availability != NodeAvailability.ACTIVE

    def can_remove(self) -> bool:
        """Drained, or down (whether it is idle and the quorum holds, node.remove checks)."""
        return self.status == NodeStatus.DOWN or (
            self.status != NodeStatus.GONE and self.availability == NodeAvailability.DRAIN
        )


class EngineStatus(models.Model):
    """What the workers last found when they asked the Swarm (one row).

    The web process reads this instead of asking Docker itself: in production it
    has no Docker socket, the workers do the work.
    """

    available = models.BooleanField(default=False)
    message = models.TextField(blank=True)
    checked_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "engine status"

    def __str__(self) -> str:
        return "available" if self.available else f"unavailable: {self.message}"
