"""What the farm's periodic work and its edge cost per site: the density benchmark's
figures for the 500-sites-on-20-workers extrapolation.

* Docker API calls (and bytes read) of each periodic task of the panel, run once in
  this process with the Docker client's ``send`` counted: node sync (every minute),
  reconcile (every 10 minutes, with the routes' resync), the recording of every
  site's services for the site pages (every minute; the pages themselves ask nothing).
* Routing Redis commands (``INFO commandstats``): what Traefik asks while nothing
  changes (its KV provider only listens), and what one route change costs.
* What Traefik's Swarm provider would ask at ``refreshSeconds=2``, from the counts of
  services and running tasks (traefik pkg/provider/docker/pswarm.go: ServiceList,
  ServerVersion, NetworkList, then a TaskList per service and a NodeInspect per
  running task, every poll).
* The probe: CPU of one front-page request through Traefik, nginx, php-fpm and MariaDB.
* How long Traefik takes to serve a route written to the Redis, and to drop it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from benchmarks.common import edge_status
from nodes import edge, routes
from nodes.inventory import sync_nodes
from nodes.swarm import client as docker_client
from sites.reconcile import run_reconcile
from sites.service_states import record_all


@dataclass
class Calls:
    docker: int = 0
    docker_bytes: int = 0
    redis: int = 0
    seconds: float = 0.0


@contextmanager
def counting() -> Iterator[Calls]:
    """Count this process's Docker API calls (and bytes) and the routing Redis's
    commands (everyone's: Traefik asks nothing while no key changes)."""
    count = Calls()
    api = docker_client().api
    original = api.send

    def send(request: Any, **kwargs: Any) -> Any:
        response = original(request, **kwargs)
        count.docker += 1
        if not kwargs.get("stream"):
            count.docker_bytes += len(response.content or b"")
        return response

    redis_before = redis_commands()
    started = time.monotonic()
    api.send = send  # type: ignore[method-assign]
    try:
        yield count
    finally:
        api.send = original  # type: ignore[method-assign]
        count.seconds = time.monotonic() - started
        count.redis = redis_commands() - redis_before


def redis_commands() -> int:
    """Commands the routing Redis has served since it started (all clients)."""
    stats = cast(dict[str, Any], routes.client().info("commandstats"))
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_"))


@dataclass
class PeriodicCosts:
    """One run of each periodic task at n sites."""

    n: int
    tasks: dict[str, Calls] = field(default_factory=dict)
    services: int = 0
    running_tasks: int = 0
    route_keys: int = 0
    route_bytes: int = 0

    def swarm_provider_calls_per_minute(self, refresh_s: float = 2) -> float:
        return (60 / refresh_s) * (3 + self.services + self.running_tasks)


PERIODIC: dict[str, tuple[float, Callable[[int], object]]] = {
    # name: (runs per minute, what it calls given a site id)
    "node sync": (1.0, lambda site_id: sync_nodes()),
    "reconcile + routes resync": (0.1, lambda site_id: run_reconcile()),
    "services' states, every site": (1.0, lambda site_id: record_all()),
}


def periodic_costs(n: int, site_id: int) -> PeriodicCosts:
    out = PeriodicCosts(n=n)
    for name, (_, run) in PERIODIC.items():
        with counting() as calls:
            run(site_id)
        out.tasks[name] = calls
    api = docker_client().api
    out.services = len(api.services())
    out.running_tasks = len(
        [
            t
            for t in api.tasks(filters={"desired-state": "running"})
            if t["Status"]["State"] == "running"
        ]
    )
    weight = routes.stats()
    out.route_keys, out.route_bytes = weight.keys, weight.bytes
    return out


def _busy_jiffies() -> int:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values[:8]) - values[3] - values[4]


def probe_cost_ms(domains: list[str], rounds: int = 10) -> tuple[float, float]:
    """(CPU ms of the whole machine, wall ms) per front-page GET through the edge, as
    the blackbox probe asks for it (no redirects followed)."""
    hz = os.sysconf("SC_CLK_TCK")
    before, started = _busy_jiffies(), time.monotonic()
    done = 0
    for _ in range(rounds):
        for domain in domains:
            edge.get(domain, "/")
            done += 1
    cpu_ms = (_busy_jiffies() - before) * 1000 / hz
    return cpu_ms / max(done, 1), (time.monotonic() - started) * 1000 / max(done, 1)


def _first(check: Callable[[], bool], timeout_s: float = 30) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    return None


@dataclass
class RouteTiming:
    served_s: float | None  # route written -> first answer of the site through Traefik
    dropped_s: float | None  # route removed -> Traefik's 404
    redis_commands: int  # all clients' commands for the write and the removal


def kv_route_timing(site_id: int, probe: str) -> RouteTiming:
    """Write a route for ``probe`` (a new Host) to the site's nginx, time until Traefik
    serves it, remove it and time until Traefik answers 404 again."""
    route = routes.Route(f"bench-{site_id}", probe, url=f"http://wp-{site_id}_nginx:80")
    before = redis_commands()
    routes.put(route)
    served = _first(lambda: 200 <= edge_status(probe) < 400)
    routes.remove(route.name)
    dropped = _first(lambda: edge_status(probe) == 404)
    return RouteTiming(served, dropped, redis_commands() - before)


def extrapolate(costs: PeriodicCosts, *, sites: int = 500, workers: int = 20) -> list[str]:
    """The 500-site / 20-worker note, linear in sites from the figures at n."""
    n = max(costs.n, 1)
    lines = [f"Extrapolated from n = {costs.n} to {sites} sites on {workers} workers:"]
    manager_per_min = 0.0
    for name, calls in costs.tasks.items():
        per_min = PERIODIC[name][0]
        lines.append(
            f"  {name}: {calls.docker} Docker calls, {calls.docker_bytes / 1024:.0f} KB, "
            f"{calls.redis} Redis commands, {calls.seconds:.2f} s per run at n = {costs.n}"
        )
        manager_per_min += calls.docker * per_min
    lines.append(
        f"  manager, periodic tasks: {manager_per_min:.1f} calls/min "
        f"({manager_per_min / n:.3f} per site); at {sites} sites ~"
        f"{manager_per_min * sites / n:.0f} calls/min (list replies grow with sites: "
        f"~{sum(c.docker_bytes for c in costs.tasks.values()) / n / 1024:.1f} KB per site per run)"
    )
    swarm = costs.swarm_provider_calls_per_minute()
    lines.append(
        f"  Traefik's Swarm provider (refreshSeconds=2) would ask {swarm:.0f} calls/min "
        f"({swarm / n:.0f} per site) now, ~{swarm * sites / n:.0f}/min per edge node at "
        f"{sites} sites ({3 * swarm * sites / n / 60:.0f}/s with 3 edge nodes); the Redis "
        "provider asks nothing while no route changes"
    )
    per_route = costs.route_bytes / n
    lines.append(
        f"  Traefik's dynamic configuration: {costs.route_keys} keys, "
        f"{costs.route_bytes / 1024:.0f} KB "
        f"({per_route:.0f} B per site); at {sites} sites ~{per_route * sites / 1024:.0f} KB, "
        "read whole by each Traefik on every change"
    )
    return lines
