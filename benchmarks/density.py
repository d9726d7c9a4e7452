"""Benchmark: how many idle sites one machine holds, and what each new one costs.

    FARM_VAR_DIR=var/bench .venv/bin/python -m benchmarks.density --sites 150

Runs the panel's real path on the local farm: a qcluster and a web server are
started, sites are created one after another through ``sites.services.create_site``
(what the New site form calls), each is followed until its install screen
answers through Traefik. Before the first site, and after the 1st and every
``--every``-th one, it waits until nothing is running (no unfinished operation,
no restic or mariadb-dump), then probes the idle machine for ``--idle-seconds``
(``benchmarks.idle``: whole-machine CPU from /proc/stat, all processes, panel and
workers included; CPU per process name; forks per second; memory used, and per
site container). The probe before the first site is the baseline, so the cost per
site is a difference measured in one run. At each checkpoint it also times three
panel pages (median of 20 renders, Django's test client, DEBUG off), runs each
periodic task once counting its Docker API calls and routing Redis commands,
measures the CPU of one front-page probe, and how long Traefik takes to serve a
route written to the routing Redis (``benchmarks.costs``). For each site it
records submit → install screen and how long Traefik took to route it (nginx
service created → first 2xx/3xx). The last checkpoint gets a longer window
(``--final-idle-seconds``) that includes the 5- and 10-minute tasks. Prints a
table, the 500-site extrapolation, writes CSVs under the var dir, and removes
every site it made (unless ``--keep``).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse

from benchmarks import costs
from benchmarks.common import ROOT, edge_status, prepare_farm, remove_site
from benchmarks.density_report import Checkpoint, SiteRun, report
from benchmarks.idle import idle_probe, site_memory_by_role, wait_quiet
from farm.models import Operation
from farm.schedules import ensure_schedules
from nodes.swarm import client as docker_client
from sites import services
from sites.models import Site, SiteStatus

# -- provisioning one site ----------------------------------------------------------


# A file nginx serves from the WordPress core without PHP: its first 200 through
# Traefik is when the route works. "/" (WordPress's redirect to the install screen)
# also needs PHP-FPM up and WordPress's first, uncached, request; both are reported.
STATIC_PATH = "/wp-includes/images/blank.gif"


def _route_prober(
    domain: str, path: str, key: str, found: dict[str, float], stop: threading.Event
) -> None:
    """GET ``path`` through Traefik every 50 ms; the first 2xx/3xx is when it works."""
    while not stop.is_set():
        status = edge_status(domain, path)
        if 200 <= status < 400:
            found[key] = time.time()
            return
        stop.wait(0.05)


def _docker_time(raw: str) -> float:
    # Docker prints nanoseconds; Python parses microseconds.
    head, _, rest = raw.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}+00:00").timestamp()


def provision_one(n: int, run: str, tenant: object, actor: object, made: list[int]) -> SiteRun:
    domain = f"dense-{run}-{n}.localhost"
    found: dict[str, float] = {}
    stop = threading.Event()
    probers = [
        threading.Thread(target=_route_prober, args=(domain, path, key, found, stop), daemon=True)
        for path, key in ((STATIC_PATH, "route"), ("/", "wordpress"))
    ]
    submitted = time.monotonic()
    created = services.create_site(
        tenant=tenant,  # type: ignore[arg-type]
        domain=domain,
        image_choice="php8.2",
        cache_enabled=True,
        actor=actor,  # type: ignore[arg-type]
    )
    made.append(created.site.pk)  # removed at the end even if the run stops right here
    for prober in probers:
        prober.start()
    result = SiteRun(n=n, domain=domain, site_id=created.site.pk)
    try:
        while True:
            op = Operation.objects.get(pk=created.operation.pk)
            if op.status == "failed":
                result.error = op.error
                return result
            status = edge_status(domain, "/wp-admin/install.php")
            if status == 200:
                break
            if time.monotonic() - submitted > 300:
                result.error = "no install screen within 300 s"
                return result
            time.sleep(0.1)
        result.provision_s = time.monotonic() - submitted
        op.refresh_from_db()
        steps = {s.name: (s.duration_ms or 0) / 1000 for s in op.steps.all()}
        result.converge_s = steps.get("converge", 0.0)
        result.reachable_s = steps.get("reachable", 0.0)
        if op.started_at:
            result.queue_s = (op.started_at - op.created_at).total_seconds()
        for prober in probers:
            prober.join(timeout=30)
        api = docker_client().api
        nginx = f"wp-{created.site.pk}_nginx"
        created_at = _docker_time(api.inspect_service(nginx)["CreatedAt"])
        if "route" in found:
            result.route_delay_s = found["route"] - created_at
        if "wordpress" in found:
            result.wordpress_delay_s = found["wordpress"] - created_at
        running = [
            t
            for t in api.tasks(filters={"service": nginx, "desired-state": "running"})
            if t["Status"]["State"] == "running"
        ]
        if running and "route" in found:
            started = _docker_time(running[0]["Status"]["Timestamp"])
            result.edge_after_running_s = found["route"] - started
    finally:
        stop.set()
    return result


# -- page times ------------------------------------------------------------------------


def page_times(actor: object, site_id: int, runs: int = 20) -> dict[str, tuple[float, int]]:
    """Median ms and query count of the sites list, a site page and the dashboard."""
    out = {}
    web = Client()
    web.force_login(actor)  # type: ignore[arg-type]
    pages = {
        "sites_list": reverse("site_list"),
        "site_page": reverse("site_detail", args=[site_id]),
        "dashboard": reverse("dashboard"),
    }
    with override_settings(DEBUG=False):
        for name, url in pages.items():
            web.get(url)
            web.get(url)  # warm caches like a panel that has been up a while
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                with CaptureQueriesContext(connection) as queries:
                    response = web.get(url)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"{url} answered {response.status_code}")
            out[name] = (statistics.median(times), len(queries.captured_queries))
    return out


# -- the run ---------------------------------------------------------------------------------


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def checkpoint(
    n: int, seconds: float, actor: object, sites: list[SiteRun], panel: tuple[int, ...]
) -> Checkpoint:
    wait = wait_quiet(seconds)
    redis_before = costs.redis_commands()
    point = Checkpoint(n, idle_probe(seconds, panel), wait)
    point.redis_idle_per_min = (costs.redis_commands() - redis_before) * 60 / point.idle.seconds
    if not sites:
        return point
    last = sites[-1]
    point.memory_by_role = site_memory_by_role()
    point.pages = page_times(actor, last.site_id)
    point.costs = costs.periodic_costs(n, last.site_id)
    point.route = costs.kv_route_timing(last.site_id, f"kv-{uuid.uuid4().hex[:8]}.localhost")
    sample = [s.domain for s in sites[-5:]]
    point.probe_cpu_ms, point.probe_wall_ms = costs.probe_cost_ms(sample)
    return point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=150)
    parser.add_argument("--every", type=int, default=10, help="probe after every N-th site")
    parser.add_argument(
        "--at",
        type=lambda v: {int(x) for x in v.split(",") if x},
        default=None,
        help="probe after these site counts only (e.g. 1,10,50,100,150) instead of --every",
    )
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument(
        "--final-idle-seconds", type=float, default=330, help="the last window (5-min tasks)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the sites in place")
    parser.add_argument("--no-web", action="store_true", help="do not run a web server")
    args = parser.parse_args()
    # Stopped with SIGTERM (kill, a timeout): unwind, so the finally below removes the sites.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    tenant, actor = prepare_farm()
    tenant.site_quota = max(tenant.site_quota, args.sites + 10)
    tenant.save(update_fields=["site_quota"])
    ensure_schedules()
    var = Path(settings.VAR_DIR)
    processes = [_start([sys.executable, "manage.py", "qcluster"], var / "density-qcluster.log")]
    if not args.no_web:
        processes.append(
            _start(
                [sys.executable, "manage.py", "runserver", "127.0.0.1:8765", "--noreload"],
                var / "density-web.log",
            )
        )
    run = uuid.uuid4().hex[:6]
    made: list[int] = []
    sites: list[SiteRun] = []
    checkpoints: list[Checkpoint] = []
    stopped = ""
    try:
        time.sleep(3)
        panel = tuple(p.pid for p in processes)  # their own sessions (start_new_session)
        checkpoints.append(checkpoint(0, args.idle_seconds, actor, [], panel))
        base = checkpoints[0].idle
        print(f"baseline: {base.busy_pct:.1f} % busy ({base.farm_busy_pct:.1f} % the farm)")
        for n in range(1, args.sites + 1):
            try:
                result = provision_one(n, run, tenant, actor, made)
            except Exception as exc:  # a CapacityError, QuotaExceeded...: where it stops
                stopped = f"stopped at n = {n}: {exc}"
                break
            sites.append(result)
            if result.error:
                stopped = f"stopped at n = {n}: {result.error}"
                break
            print(
                f"site {n}: {result.provision_s:.1f} s "
                f"(route {result.route_delay_s or float('nan'):.2f} s)",
                flush=True,
            )
            due = n in args.at if args.at else (n == 1 or n % args.every == 0)
            if due or n == args.sites:
                seconds = args.final_idle_seconds if n == args.sites else args.idle_seconds
                point = checkpoint(n, seconds, actor, sites, panel)
                checkpoints.append(point)
                print(
                    f"  n={n}: {point.idle.busy_pct:.1f} % busy "
                    f"({point.idle.farm_busy_pct:.1f} % the farm)",
                    flush=True,
                )
    finally:
        for proc in processes:
            _stop(proc)
        report(sites, checkpoints, stopped, var / f"density-{run}.csv")
        if not args.keep:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(remove_site, made))
            Site.objects.filter(pk__in=made).update(status=SiteStatus.DELETED, domain_claim=None)


if __name__ == "__main__":
    main()
