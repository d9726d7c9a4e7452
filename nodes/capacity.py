"""Is there room for one more site? Reservations against each ready worker.

Swarm schedules by reservations, per node and per service: it places a task on a
node whose unreserved CPU and memory hold the task's reservation, or leaves it
pending with "no suitable node". The panel asks the same question first and
refuses a site that no worker can hold, naming the short resource and the node,
instead of leaving its tasks pending.

Reservations are about twice what a site uses idle (measured by
``benchmarks/density.py``: php-fpm's master with no worker and a worker or two
after a visit, nginx with one worker, a Redis cache); limits stay at the
reference design's (php-fpm 384 MB / 0.5 CPU). CPU reservations are scaled by
FARM_CPU_RESERVATION_SCALE (1.0 in production: php-fpm 0.25 CPU, ~22 sites on
8 vCPU; 0.03 elsewhere, so a 2-core machine holds its 150 sites).

Each node's reserved CPU and memory come from Swarm (``nodes.inventory.sync_nodes``
sums the reservations of its running tasks every minute); the live sites whose
tasks that sync did not see yet are placed on top, as Swarm would place them.
Before the first sync, every live site is placed that way, beside the platform's
reservation. The web process reads rows only: no Docker call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from farm.errors import FarmError
from nodes.models import Node, NodeAvailability, NodeStatus


@dataclass(frozen=True)
class Reservation:
    cpu: float
    memory_mb: int


SITE_SERVICES = {
    "php": Reservation(0.25, 96),
    "nginx": Reservation(0.05, 16),
    "redis": Reservation(0.05, 16),
}
SERVICE_LABELS = {"php": "php-fpm", "nginx": "nginx", "redis": "Redis"}
# Traefik, MariaDB, Redis, the routing Redis, Prometheus, blackbox, Alertmanager, the
# maintenance page (tests/nodes check this against nodes.platform).
PLATFORM = Reservation(0.35, 880)


class CapacityError(FarmError):
    pass


def site_services(*, cache_enabled: bool) -> list[str]:
    return ["php", "nginx"] + (["redis"] if cache_enabled else [])


def site_reservation(*, cache_enabled: bool) -> Reservation:
    names = site_services(cache_enabled=cache_enabled)
    return Reservation(
        sum(SITE_SERVICES[n].cpu for n in names), sum(SITE_SERVICES[n].memory_mb for n in names)
    )


@dataclass(frozen=True)
class LiveSites:
    """How many live sites already reserve room, with and without Redis; and of
    those, how many the last node sync did not see (None: nodes never synced)."""

    cached: int
    plain: int
    unseen_cached: int | None = None
    unseen_plain: int | None = None


@dataclass(frozen=True)
class Capacity:
    workers: int
    cpus: float
    memory_mb: int
    reserved_cpu: float
    reserved_mb: int


def _scaled(cpu: float) -> float:
    return cpu * settings.FARM_CPU_RESERVATION_SCALE


def ready_workers() -> list[Node]:
    ready = Node.objects.filter(status=NodeStatus.READY, availability=NodeAvailability.ACTIVE)
    # Few rows; JSON containment is not portable across SQLite and MariaDB.
    return [n for n in ready if "worker" in n.farm_roles]


@dataclass
class Room:
    node: Node
    cpu: float  # unreserved, scaled like Swarm's figures
    memory_mb: float
    total_cpu: float = field(init=False)
    total_mb: float = field(init=False)

    def __post_init__(self) -> None:
        self.total_cpu = float(self.node.cpus)
        self.total_mb = self.node.memory_bytes / 1024**2

    def fits(self, need: Reservation) -> bool:
        return self.memory_mb >= need.memory_mb and self.cpu >= _scaled(need.cpu) - 1e-9

    def take(self, need: Reservation) -> None:
        self.cpu -= _scaled(need.cpu)
        self.memory_mb -= need.memory_mb


def _rooms(nodes: list[Node], live: LiveSites) -> tuple[list[Room], list[bool]]:
    """Each node's unreserved room, and the sites (cache on or off) still to place."""
    synced = all(n.reserved_memory_bytes is not None for n in nodes)
    if synced and live.unseen_cached is not None and live.unseen_plain is not None:
        rooms = [
            Room(
                n,
                float(n.cpus) - float(n.reserved_cpus or 0),
                (n.memory_bytes - (n.reserved_memory_bytes or 0)) / 1024**2,
            )
            for n in nodes
        ]
        return rooms, [True] * live.unseen_cached + [False] * live.unseen_plain
    rooms = [Room(n, float(n.cpus), n.memory_bytes / 1024**2) for n in nodes]
    platform_node = next((r for r in rooms if {"edge", "db"} & set(r.node.farm_roles)), None)
    if platform_node is not None:
        platform_node.take(PLATFORM)
    return rooms, [True] * live.cached + [False] * live.plain


def _place(rooms: list[Room], need: Reservation) -> Room | None:
    """Where Swarm would put it: a node that holds it, the one with most memory free."""
    fitting = [r for r in rooms if r.fits(need)]
    return max(fitting, key=lambda r: r.memory_mb) if fitting else None


def current_rooms(live: LiveSites) -> list[Room]:
    """Each ready worker's unreserved room once the live sites are placed."""
    rooms, pending = _rooms(ready_workers(), live)
    for cache_enabled in pending:
        for name in site_services(cache_enabled=cache_enabled):
            need = SITE_SERVICES[name]
            # A live site is there whether or not it fits: count it where it fits
            # best, or on the node with most memory.
            (_place(rooms, need) or max(rooms, key=lambda r: r.memory_mb)).take(need)
    return rooms


def current_capacity(live: LiveSites) -> Capacity:
    """The ready workers' totals and what they have reserved (a summary for pages)."""
    rooms = current_rooms(live) if ready_workers() else []
    cpus = sum(r.total_cpu for r in rooms)
    memory = sum(r.total_mb for r in rooms)
    return Capacity(
        workers=len(rooms),
        cpus=cpus,
        memory_mb=int(memory),
        reserved_cpu=cpus - sum(r.cpu for r in rooms),
        reserved_mb=round(memory - sum(r.memory_mb for r in rooms)),
    )


def check_room_for_site(*, cache_enabled: bool, live: LiveSites) -> None:
    """Raise CapacityError unless each of the new site's services fits on some ready
    worker beside ``live`` (per node, as Swarm places them: not a farm-wide sum)."""
    if not ready_workers():
        raise CapacityError(
            "No ready worker node is known, so the site would have nowhere to run. "
            "Bring the farm up (manage.py farm_up) or add a worker."
        )
    rooms = current_rooms(live)
    for name in sorted(site_services(cache_enabled=cache_enabled), key=_largest_first):
        need = SITE_SERVICES[name]
        room = _place(rooms, need)
        if room is None:
            raise CapacityError(_no_room(name, need, rooms))
        room.take(need)


def _largest_first(name: str) -> int:
    return -SITE_SERVICES[name].memory_mb


def _no_room(name: str, need: Reservation, rooms: list[Room]) -> str:
    wants = (
        f"No worker has room for this site's {SERVICE_LABELS[name]} (it reserves "
        f"{need.memory_mb} MB of memory and {_scaled(need.cpu):.4g} CPU): "
    )
    with_memory = [r for r in rooms if r.memory_mb >= need.memory_mb]
    if not with_memory:
        best = max(rooms, key=lambda r: r.memory_mb)
        return wants + (
            f"the ready worker with the most free memory, {best.node.hostname}, has "
            f"{max(best.memory_mb, 0):.0f} MB of {best.total_mb / 1024:.1f} GiB unreserved. "
            "Memory is short: add a worker node or delete unused sites."
        )
    best = max(with_memory, key=lambda r: r.cpu)
    return wants + (
        f"the ready worker with the most unreserved CPU, {best.node.hostname}, has "
        f"{max(best.cpu, 0):.4g} of {best.total_cpu:g} CPUs unreserved. "
        "CPU is short: add a worker node or delete unused sites."
    )
