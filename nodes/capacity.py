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

Only ready, active nodes with the ``worker`` role count: a drained, paused or down
node holds no new task, and the sites it held are placed again on the others,
where Swarm moves them. Each node's reserved CPU and memory come from Swarm
(``nodes.inventory.sync_nodes`` sums the reservations of its running tasks every
minute); the live sites whose tasks that sync did not see on a counted worker are
placed on top. Before the first sync, every live site is placed that way, beside
the platform's reservation. The web process reads rows only: no Docker call.

Where a service goes: Swarm's scheduler keeps the nodes that meet the task's
constraints and reservations, then takes the one with the fewest tasks of that
service and, on a tie, the fewest tasks in all. A new site's services have no task
anywhere yet and every site reserves the same, so on workers of one size that is,
near enough, the node with the most memory free, which is what ``_place`` takes:
sites spread over the workers. Whether some node holds the new site depends on room,
not on that order; the order only decides where the sites the sync has not seen yet
are assumed to be, which can differ from Swarm's on workers of different sizes.
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


def counted_site_ids() -> set[int] | None:
    """The sites whose tasks the last sync saw on a counted worker (their reservations
    are in those nodes' rows); None until every ready worker has been synced. A site
    seen only on a drained or down node is not here: Swarm moves it onto the others,
    so it is placed again there."""
    workers = ready_workers()
    if not workers or any(n.reserved_memory_bytes is None for n in workers):
        return None
    return {int(pk) for n in workers for pk in n.seen_site_ids or []}


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
    """A node that holds it, the one with most memory free (how Swarm spreads sites,
    see the module's docstring); None if none holds it."""
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


# How many workers a refusal names (the ones with most memory free); the rest are counted.
NAMED_IN_REFUSAL = 5


def _no_room(name: str, need: Reservation, rooms: list[Room]) -> str:
    """Every worker is short of something: name each (up to NAMED_IN_REFUSAL) with
    what it has left of the short resource, then which resource is short where."""
    ranked = sorted(rooms, key=lambda r: (-r.memory_mb, -r.cpu))
    short: dict[str, list[str]] = {"Memory": [], "CPU": []}
    lines = []
    for room in ranked:
        host = room.node.hostname
        left = []
        if room.memory_mb < need.memory_mb:
            short["Memory"].append(host)
            left.append(f"{max(room.memory_mb, 0):.0f} MB of {room.total_mb / 1024:.1f} GiB")
        if room.cpu < _scaled(need.cpu) - 1e-9:
            short["CPU"].append(host)
            left.append(f"{max(room.cpu, 0):.4g} of {room.total_cpu:g} CPUs")
        lines.append(f"{host} has {' and '.join(left)} unreserved")
    named = lines[:NAMED_IN_REFUSAL]
    if len(lines) > len(named):
        named.append(f"{len(lines) - len(named)} more ready workers have less memory free")
    where = "; ".join(
        f"{resource} is short on {_hosts(hosts)}" for resource, hosts in short.items() if hosts
    )
    return (
        f"No worker has room for this site's {SERVICE_LABELS[name]} (it reserves "
        f"{need.memory_mb} MB of memory and {_scaled(need.cpu):.4g} CPU): "
        f"{', '.join(named)}. {where}: add a worker node or delete unused sites."
    )


def _hosts(hosts: list[str]) -> str:
    if len(hosts) > NAMED_IN_REFUSAL:
        shown = hosts[:NAMED_IN_REFUSAL]
        return f"{', '.join(shown)} and {len(hosts) - len(shown)} more"
    return hosts[0] if len(hosts) == 1 else f"{', '.join(hosts[:-1])} and {hosts[-1]}"
