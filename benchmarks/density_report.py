"""The density benchmark's results: the table, the CSVs, the goals and the 500-site note."""

from __future__ import annotations

import csv
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.costs import PeriodicCosts, RouteTiming, extrapolate
from benchmarks.idle import WATCHED, IdleSample


@dataclass
class SiteRun:
    n: int
    domain: str
    site_id: int
    provision_s: float = 0.0
    queue_s: float = 0.0
    converge_s: float = 0.0
    reachable_s: float = 0.0
    route_delay_s: float | None = None  # nginx service created -> first 2xx of a static file
    wordpress_delay_s: float | None = None  # nginx service created -> first 2xx/3xx of "/"
    edge_after_running_s: float | None = None  # nginx task running -> first 2xx/3xx
    error: str = ""


@dataclass
class Checkpoint:
    n: int
    idle: IdleSample
    quiet_wait_s: float
    pages: dict[str, tuple[float, int]] = field(default_factory=dict)
    redis_idle_per_min: float = 0.0  # routing Redis commands while idle (Traefik's polling)
    memory_by_role: dict[str, tuple[int, float]] = field(default_factory=dict)
    costs: PeriodicCosts | None = None
    route: RouteTiming | None = None
    probe_cpu_ms: float = 0.0
    probe_wall_ms: float = 0.0


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _r(value: float | None, digits: int = 2) -> float | str:
    return "" if value is None else round(value, digits)


def _row(point: Checkpoint, base: IdleSample, site: SiteRun | None) -> dict[str, object]:
    idle = point.idle
    n = point.n
    pages = point.pages
    calls = point.costs.tasks if point.costs else {}
    return {
        "n": n,
        "provision_s": _r(site.provision_s) if site else "",
        "route_delay_s": _r(site.route_delay_s) if site else "",
        "wordpress_delay_s": _r(site.wordpress_delay_s) if site else "",
        "edge_after_running_s": _r(site.edge_after_running_s) if site else "",
        "kv_route_served_s": _r(point.route.served_s, 3) if point.route else "",
        "kv_route_dropped_s": _r(point.route.dropped_s, 3) if point.route else "",
        "kv_route_redis_cmds": point.route.redis_commands if point.route else "",
        "idle_busy_pct": round(idle.busy_pct, 2),
        "farm_busy_pct": round(idle.farm_busy_pct, 2),
        "worst_60s_pct": round(idle.worst_60s_pct, 2),
        "busy_pct_per_site": round((idle.busy_pct - base.busy_pct) / n, 4) if n else 0.0,
        "farm_pct_per_site": round((idle.farm_busy_pct - base.farm_busy_pct) / n, 4) if n else 0.0,
        "forks_per_s": round(idle.forks_per_s, 1),
        "mem_used_mb": round(idle.memory_mb),
        "mem_per_site_mb": round((idle.memory_mb - base.memory_mb) / n, 1) if n else 0.0,
        **{f"{c}_pct": round(idle.by_process.get(c, 0.0), 2) for c in [*WATCHED, "other"]},
        "unattributed_pct": round(idle.by_process.get("unattributed", 0.0), 2),
        **{f"{role}_rss_mb": round(mb, 1) for role, (_, mb) in point.memory_by_role.items()},
        "redis_idle_cmds_per_min": round(point.redis_idle_per_min, 1),
        "probe_cpu_ms": round(point.probe_cpu_ms, 1),
        "probe_wall_ms": round(point.probe_wall_ms, 1),
        **{
            f"{name.split()[0]}_docker_calls": c.docker
            for name, c in calls.items()
            if name != "reconcile + routes resync"
        },
        "reconcile_docker_calls": calls["reconcile + routes resync"].docker if calls else "",
        "reconcile_s": round(calls["reconcile + routes resync"].seconds, 2) if calls else "",
        "route_bytes": point.costs.route_bytes if point.costs else "",
        "swarm_provider_calls_per_min": round(point.costs.swarm_provider_calls_per_minute())
        if point.costs
        else "",
        "sites_list_ms": round(pages["sites_list"][0], 1) if pages else "",
        "site_page_ms": round(pages["site_page"][0], 1) if pages else "",
        "dashboard_ms": round(pages["dashboard"][0], 1) if pages else "",
        "max_queries": max(q for _, q in pages.values()) if pages else "",
        "quiet_wait_s": round(point.quiet_wait_s, 1),
        "idle_window_s": round(idle.seconds),
    }


COLUMNS = [
    ("n", "n", 4),
    ("provision_s", "prov s", 7),
    ("route_delay_s", "route s", 7),
    ("kv_route_served_s", "kv s", 6),
    ("idle_busy_pct", "busy %", 7),
    ("farm_busy_pct", "farm %", 7),
    ("worst_60s_pct", "60s max", 7),
    ("farm_pct_per_site", "/site %", 8),
    ("forks_per_s", "forks/s", 7),
    ("mem_used_mb", "mem MB", 7),
    ("mem_per_site_mb", "MB/site", 7),
    ("dockerd_pct", "dockerd", 7),
    ("containerd_pct", "ctrd", 5),
    ("containerd-shim_pct", "shim", 5),
    ("traefik_pct", "traefik", 7),
    ("php-fpm8.2_pct", "php", 5),
    ("prometheus_pct", "prom", 5),
    ("python_pct", "python", 6),
    ("unattributed_pct", "unattr", 6),
    ("probe_cpu_ms", "probe ms", 8),
    ("sites_list_ms", "list ms", 7),
    ("site_page_ms", "site ms", 7),
    ("dashboard_ms", "dash ms", 7),
    ("max_queries", "q", 3),
]


def report(sites: list[SiteRun], points: list[Checkpoint], stopped: str, path: Path) -> None:
    if not points:
        return
    base = points[0].idle
    by_n = {s.n: s for s in sites}
    rows = [_row(point, base, by_n.get(point.n)) for point in points]
    print("\n" + " ".join(f"{title:>{width}}" for _, title, width in COLUMNS))
    for row in rows:
        print(" ".join(f"{row.get(key, '')!s:>{width}}" for key, _, width in COLUMNS))
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    if sites:
        with path.with_name(path.stem + "-sites.csv").open("w", newline="") as fh:
            site_writer = csv.DictWriter(fh, fieldnames=list(asdict(sites[0])))
            site_writer.writeheader()
            site_writer.writerows(asdict(s) for s in sites)
    summary(sites, points, rows)
    if stopped:
        print(stopped)
    print(f"CSV: {path} (and {path.stem}-sites.csv)")


def summary(sites: list[SiteRun], points: list[Checkpoint], rows: list[dict[str, object]]) -> None:
    ok = [s for s in sites if not s.error]
    if not ok:
        return
    base, end = points[0], points[-1]
    times = [s.provision_s for s in ok]
    last = times[-10:]
    print(
        "\nprovision (submit → install screen): "
        f"sites 1-10 p50 {statistics.median(times[:10]):.1f} s; "
        f"last 10 p50 {statistics.median(last):.1f} s, p95 {_p(last, 0.95):.1f} s; "
        f"all p50 {statistics.median(times):.1f} s, p95 {_p(times, 0.95):.1f} s"
    )
    print(
        "provision curve (every 10th site): "
        + ", ".join(f"{s.n}: {s.provision_s:.1f}" for s in ok if s.n == 1 or s.n % 10 == 0)
    )
    routes = [s.route_delay_s for s in ok if s.route_delay_s is not None]
    after = [s.edge_after_running_s for s in ok if s.edge_after_running_s is not None]
    kv = [p.route.served_s for p in points if p.route and p.route.served_s is not None]
    wordpress = [s.wordpress_delay_s for s in ok if s.wordpress_delay_s is not None]
    if routes:
        print(
            "route delay (nginx service created → first 200 of a static file through Traefik): "
            f"p50 {statistics.median(routes):.2f} s, p95 {_p(routes, 0.95):.2f} s, "
            f"max {max(routes):.2f} s, over 2 s: {sum(r > 2 for r in routes)} of {len(routes)}; "
            f"after its task ran: p50 {statistics.median(after or [0]):.2f} s, "
            f"max {max(after or [0]):.2f} s"
        )
    if wordpress:
        print(
            "WordPress answers (nginx service created → first 2xx/3xx of /, PHP-FPM up and "
            f"WordPress's first request): p50 {statistics.median(wordpress):.2f} s, "
            f"p95 {_p(wordpress, 0.95):.2f} s, max {max(wordpress):.2f} s"
        )
    if kv:
        print(
            f"route written to the routing Redis → served by Traefik: max {max(kv):.3f} s "
            f"(at n = {end.n}: {end.route.served_s if end.route else None})"
        )
    if end.n:
        per_site = (end.idle.farm_busy_pct - base.idle.farm_busy_pct) / end.n
        print(
            f"idle at n = {end.n}: {end.idle.busy_pct:.1f} % of the machine busy, "
            f"{end.idle.farm_busy_pct:.1f} % by the farm, busiest 60-s slice "
            f"{end.idle.worst_60s_pct:.1f} % (baseline {base.idle.busy_pct:.1f} "
            f"/ {base.idle.farm_busy_pct:.1f} %): {per_site:.3f} % per site "
            f"({per_site * 20:.2f} ms of CPU per second per site on 2 cores), "
            f"{(end.idle.memory_mb - base.idle.memory_mb) / end.n:.1f} MB per site"
        )
        kdamond = end.idle.by_process.get("kdamond.0", 0.0)
        if kdamond:
            print(
                f"  of it the VM kernel's memory monitor (kdamond): {kdamond:.1f} %; "
                f"without it {end.idle.busy_pct - kdamond:.1f} %"
            )
        roles = ", ".join(
            f"{role} {mb:.1f} MB ({count})"
            for role, (count, mb) in sorted(end.memory_by_role.items())
        )
        print(f"resident memory per site container at n = {end.n}: {roles}")
        print(
            f"front-page probe: {end.probe_cpu_ms:.1f} ms CPU, "
            f"{end.probe_wall_ms:.1f} ms wall each; "
            f"once a minute per site: {end.probe_cpu_ms / 60:.2f} ms/s per site"
        )
        print(f"routing Redis while idle: {end.redis_idle_per_min:.1f} commands/min")
    last_row = rows[-1]
    pages = [last_row.get(k) for k in ("sites_list_ms", "site_page_ms", "dashboard_ms")]
    verdicts = {
        "idle whole machine <= 25 %": end.idle.busy_pct <= 25,
        "idle whole machine <= 25 % in its busiest 60-s slice": end.idle.worst_60s_pct <= 25,
        "idle farm (containers, engine, panel) <= 25 %": end.idle.farm_busy_pct <= 25,
        "provision p50 <= 10 s (last 10)": statistics.median(last) <= 10,
        "provision p95 <= 30 s (last 10)": _p(last, 0.95) <= 30,
        "route within 2 s (route delay max)": bool(routes) and max(routes) <= 2,
        "pages < 100 ms median": all(isinstance(p, float) and p < 100 for p in pages),
    }
    for goal, passed in verdicts.items():
        print(f"{'PASS' if passed else 'FAIL'}  {goal}")
    if end.costs:
        print("\n" + "\n".join(extrapolate(end.costs)))
