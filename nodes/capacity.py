"""Is there room for one more site? Reservations against the ready workers.

Swarm schedules by reservations: per site php-fpm 0.25 CPU / 192 MB, nginx
and Redis 0.05 CPU / 32 MB each (half the limits, as in the reference
design; CPU scaled by FARM_CPU_RESERVATION_SCALE). The panel refuses a site
the ready worker nodes cannot hold, and says why, instead of leaving its
tasks pending with "no suitable node". It counts from its own rows (the Node
inventory) and the live sites its caller counted (``LiveSites``), so the web
process needs no Docker access.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from farm.errors import FarmError
from nodes.models import Node, NodeAvailability, NodeStatus


@dataclass(frozen=True)
class Reservation:
    cpu: float
    memory_mb: int


SITE_SERVICES = {
    "php": Reservation(0.25, 192),
    "nginx": Reservation(0.05, 32),
    "redis": Reservation(0.05, 32),
}
# Traefik, MariaDB, Redis, Prometheus, blackbox, Alertmanager, maintenance page
# (tests/nodes check this against nodes.platform).
PLATFORM = Reservation(0.35, 848)


class CapacityError(FarmError):
    pass


def site_reservation(*, cache_enabled: bool) -> Reservation:
    names = ["php", "nginx"] + (["redis"] if cache_enabled else [])
    return Reservation(
        sum(SITE_SERVICES[n].cpu for n in names), sum(SITE_SERVICES[n].memory_mb for n in names)
    )


@dataclass(frozen=True)
class LiveSites:
    """How many live sites already reserve room, with and without Redis."""

    cached: int
    plain: int


@dataclass(frozen=True)
class Capacity:
    workers: int
    cpus: float
    memory_mb: int
    reserved_cpu: float
    reserved_mb: int


def _scaled(cpu: float) -> float:
    return cpu * settings.FARM_CPU_RESERVATION_SCALE


def current_capacity(live: LiveSites) -> Capacity:
    ready = Node.objects.filter(status=NodeStatus.READY, availability=NodeAvailability.ACTIVE)
    # Few rows; JSON containment is not portable across SQLite and MariaDB.
    nodes = [n for n in ready if "worker" in n.farm_roles]
    cpu = (
        live.cached * site_reservation(cache_enabled=True).cpu
        + live.plain * site_reservation(cache_enabled=False).cpu
    )
    memory = (
        live.cached * site_reservation(cache_enabled=True).memory_mb
        + live.plain * site_reservation(cache_enabled=False).memory_mb
    )
    if any("edge" in n.farm_roles or "db" in n.farm_roles for n in nodes):
        cpu += PLATFORM.cpu
        memory += PLATFORM.memory_mb
    return Capacity(
        workers=len(nodes),
        cpus=float(sum(n.cpus for n in nodes)),
        memory_mb=sum(n.memory_bytes for n in nodes) // (1024 * 1024),
        reserved_cpu=_scaled(cpu),
        reserved_mb=memory,
    )


def check_room_for_site(*, cache_enabled: bool, live: LiveSites) -> None:
    """Raise CapacityError unless the ready workers hold one more site beside ``live``."""
    capacity = current_capacity(live)
    need = site_reservation(cache_enabled=cache_enabled)
    if capacity.workers == 0:
        raise CapacityError(
            "No ready worker node is known, so the site would have nowhere to run. "
            "Bring the farm up (manage.py farm_up) or add a worker."
        )
    if capacity.memory_mb - capacity.reserved_mb < need.memory_mb:
        raise CapacityError(
            f"No worker has room: {capacity.workers} worker(s) with "
            f"{capacity.memory_mb / 1024:.1f} GiB already reserve "
            f"{capacity.reserved_mb / 1024:.1f} GiB of memory, and a site needs "
            f"{need.memory_mb} MB more. Add a worker node or delete unused sites."
        )
    if capacity.cpus - capacity.reserved_cpu < _scaled(need.cpu) - 1e-9:
        raise CapacityError(
            f"No worker has room: {capacity.workers} worker(s) with {capacity.cpus:g} CPUs "
            f"already reserve {capacity.reserved_cpu:.2f} CPUs, and a site needs "
            f"{_scaled(need.cpu):.2f} more. Add a worker node or delete unused sites."
        )
