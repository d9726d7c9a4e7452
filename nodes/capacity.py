"""Is there room for one more site? Reservations against the workers' memory.

Swarm schedules by reservations: php-fpm 192 MB, nginx 32 MB, Redis 32 MB per
site (half the limits, as in the reference design). The panel refuses a site
when the ready worker nodes cannot hold one more, and says why, instead of
leaving a task pending with "no suitable node".
"""

from __future__ import annotations

from dataclasses import dataclass

from farm.errors import FarmError
from nodes.models import Node, NodeAvailability, NodeStatus

MB = 1024 * 1024
SITE_RESERVATION_MB = {"php": 192, "nginx": 32, "redis": 32}
PLATFORM_RESERVATION_MB = 1024  # MariaDB, Traefik, Prometheus... on a one-node farm


class CapacityError(FarmError):
    pass


@dataclass(frozen=True)
class Capacity:
    workers: int
    memory_mb: int
    reserved_mb: int

    @property
    def free_mb(self) -> int:
        return self.memory_mb - self.reserved_mb


def site_reservation_mb(*, cache_enabled: bool) -> int:
    total = SITE_RESERVATION_MB["php"] + SITE_RESERVATION_MB["nginx"]
    return total + (SITE_RESERVATION_MB["redis"] if cache_enabled else 0)


def current_capacity() -> Capacity:
    from sites.models import LIVE_STATUSES, Site

    ready = Node.objects.filter(status=NodeStatus.READY, availability=NodeAvailability.ACTIVE)
    # Few rows; JSON containment is not portable across SQLite and MariaDB.
    nodes = [n for n in ready if "worker" in n.farm_roles]
    memory = sum(n.memory_bytes for n in nodes) // MB
    sites = Site.objects.filter(status__in=LIVE_STATUSES)
    cached = sites.filter(cache_enabled=True).count()
    plain = sites.count() - cached
    reserved = cached * site_reservation_mb(cache_enabled=True) + plain * site_reservation_mb(
        cache_enabled=False
    )
    if any(n.role == Node.Role.MANAGER for n in nodes):
        reserved += PLATFORM_RESERVATION_MB
    return Capacity(workers=len(nodes), memory_mb=memory, reserved_mb=reserved)


def check_room_for_site(*, cache_enabled: bool) -> None:
    capacity = current_capacity()
    need = site_reservation_mb(cache_enabled=cache_enabled)
    if capacity.workers == 0:
        raise CapacityError(
            "No ready worker node is known, so the site would have nowhere to run. "
            "Bring the farm up (manage.py farm_up) or add a worker."
        )
    if capacity.free_mb < need:
        raise CapacityError(
            f"No worker has room: {capacity.workers} worker(s) with "
            f"{capacity.memory_mb / 1024:.1f} GiB already reserve "
            f"{capacity.reserved_mb / 1024:.1f} GiB, and a site needs {need} MB more. "
            "Add a worker node or delete unused sites."
        )
