"""Benchmark: how many idle sites one machine holds, and what each new one costs.

    FARM_VAR_DIR=var/bench .venv/bin/python -m benchmarks.density --sites 150

Runs the panel's real path on the local farm: a qcluster and a web server are
started, sites are created one after another through ``sites.services.create_site``
(what the New site form calls), each is followed until its install screen
answers through Traefik. Before the first site, and after the 1st and every
``--every``-th one, it waits until nothing is running (no unfinished operation,
no restic or mariadb-dump), then probes the idle machine for ``--idle-seconds``:
whole-machine CPU from /proc/stat (all processes, panel and workers included),
CPU per process name, forks per second, memory used. The probe before the
first site is the baseline, so the cost per site is a difference measured in
one run. It also times three panel pages with a real number of sites (median
of 20 renders, Django's test client, DEBUG off) and, for each site, how long
Traefik took to route it (nginx service created → first 2xx/3xx through the
edge). Prints a table, writes a CSV under the var dir, and removes every site
it made (unless ``--keep``).
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import requests
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse

from benchmarks.common import ROOT, prepare_farm, remove_site
from farm.models import Operation
from farm.models.operations import UNFINISHED
from farm.schedules import ensure_schedules
from nodes.swarm import client as docker_client
from sites import services
from sites.models import Site, SiteStatus

BUSY_TOOLS = ("restic", "mariadb-dump", "mariadb", "mariabackup")
# Process names worth a column; the rest is "other" (and short-lived processes,
# which /proc/<pid> no longer shows at the end of a window, are "unattributed").
WATCHED = (
    "dockerd",
    "containerd",
    "containerd-shim",
    "traefik",
    "php-fpm8.2",
    "nginx",
    "redis-server",
    "prometheus",
    "blackbox_export",
    "alertmanager",
    "mariadbd",
    "python",
)


# -- the idle probe --------------------------------------------------------------


def _cpu_times() -> tuple[int, int, int]:
    """(busy jiffies, total jiffies, forks so far) of the whole machine."""
    busy = total = forks = 0
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts[0] == "cpu":
            values = [int(v) for v in parts[1:]]
            idle = values[3] + values[4]  # idle + iowait
            total = sum(values[:8])  # guest time is already in user/nice
            busy = total - idle
        elif parts[0] == "processes":
            forks = int(parts[1])
    return busy, total, forks


def _per_process() -> dict[int, tuple[str, int]]:
    """pid → (name, utime + stime jiffies) of every process now."""
    out: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


def _memory_used_mb() -> float:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0])
    return (info["MemTotal"] - info["MemAvailable"]) / 1024


@dataclass
class IdleSample:
    seconds: float
    busy_pct: float  # of the whole machine (all cores)
    forks_per_s: float
    memory_mb: float
    by_process: dict[str, float]  # % of the whole machine


def idle_probe(seconds: float) -> IdleSample:
    ncpu = os.cpu_count() or 1
    busy0, total0, forks0 = _cpu_times()
    procs0 = _per_process()
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    busy1, total1, forks1 = _cpu_times()
    procs1 = _per_process()
    hz = os.sysconf("SC_CLK_TCK")
    by_name: dict[str, float] = defaultdict(float)
    for pid, (name, jiffies) in procs1.items():
        before = procs0.get(pid)
        used = jiffies - (before[1] if before and before[0] == name else 0)
        key = name if name in WATCHED else ("containerd-shim" if "shim" in name else "other")
        by_name[key] += used
    attributed = sum(by_name.values())
    total_jiffies = total1 - total0
    by_process = {k: 100 * v / (elapsed * hz * ncpu) for k, v in by_name.items()}
    by_process["unattributed"] = max(
        0.0, 100 * ((busy1 - busy0) - attributed) / max(total_jiffies, 1)
    )
    return IdleSample(
        seconds=elapsed,
        busy_pct=100 * (busy1 - busy0) / max(total_jiffies, 1),
        forks_per_s=(forks1 - forks0) / elapsed,
        memory_mb=_memory_used_mb(),
        by_process=dict(by_process),
    )


def busy_tools_running() -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in BUSY_TOOLS:
                    return True
            except OSError:
                continue
    return False


def wait_quiet(limit_s: float = 300) -> float:
    """Until no operation is unfinished and no backup tool runs; then 10 s to settle."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if not Operation.objects.filter(status__in=UNFINISHED).exists() and not (
            busy_tools_running()
        ):
            break
        time.sleep(1)
    time.sleep(10)
    return time.monotonic() - started


# -- provisioning one site ----------------------------------------------------------


def _edge_status(domain: str, path: str = "/") -> int | None:
    try:
        return requests.get(
            f"{settings.FARM_EDGE_URL}{path}",
            headers={"Host": domain},
            timeout=5,
            allow_redirects=False,
        ).status_code
    except requests.RequestException:
        return None


def _route_prober(domain: str, found: dict[str, float], stop: threading.Event) -> None:
    """GET / through Traefik every 50 ms; the first 2xx/3xx is when the route works."""
    while not stop.is_set():
        status = _edge_status(domain)
        if status is not None and 200 <= status < 400:
            found["at"] = time.time()
            return
        stop.wait(0.05)


def _docker_time(raw: str) -> float:
    # Docker prints nanoseconds; Python parses microseconds.
    head, _, rest = raw.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}+00:00").timestamp()


@dataclass
class SiteRun:
    n: int
    domain: str
    site_id: int
    provision_s: float = 0.0
    queue_s: float = 0.0
    converge_s: float = 0.0
    reachable_s: float = 0.0
    route_delay_s: float | None = None
    error: str = ""


def provision_one(n: int, run: str, tenant: object, actor: object) -> SiteRun:
    domain = f"dense-{run}-{n}.localhost"
    found: dict[str, float] = {}
    stop = threading.Event()
    prober = threading.Thread(target=_route_prober, args=(domain, found, stop), daemon=True)
    submitted = time.monotonic()
    created = services.create_site(
        tenant=tenant,  # type: ignore[arg-type]
        domain=domain,
        image_choice="php8.2",
        cache_enabled=True,
        actor=actor,  # type: ignore[arg-type]
    )
    prober.start()
    result = SiteRun(n=n, domain=domain, site_id=created.site.pk)
    try:
        while True:
            op = Operation.objects.get(pk=created.operation.pk)
            if op.status == "failed":
                result.error = op.error
                return result
            status = _edge_status(domain, "/wp-admin/install.php")
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
        prober.join(timeout=30)
        if "at" in found:
            created_at = docker_client().api.inspect_service(f"wp-{created.site.pk}_nginx")[
                "CreatedAt"
            ]
            result.route_delay_s = found["at"] - _docker_time(created_at)
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


@dataclass
class Checkpoint:
    n: int
    idle: IdleSample
    quiet_wait_s: float
    pages: dict[str, tuple[float, int]] = field(default_factory=dict)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=150)
    parser.add_argument("--every", type=int, default=10, help="probe after every N-th site")
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--keep", action="store_true", help="leave the sites in place")
    parser.add_argument("--no-web", action="store_true", help="do not run a web server")
    args = parser.parse_args()

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
        wait = wait_quiet()
        checkpoints.append(Checkpoint(0, idle_probe(args.idle_seconds), wait))
        print(f"baseline: {checkpoints[0].idle.busy_pct:.1f} % busy", flush=True)
        for n in range(1, args.sites + 1):
            try:
                result = provision_one(n, run, tenant, actor)
            except Exception as exc:  # a CapacityError, QuotaExceeded...: where it stops
                stopped = f"stopped at n = {n}: {exc}"
                break
            made.append(result.site_id)
            sites.append(result)
            if result.error:
                stopped = f"stopped at n = {n}: {result.error}"
                break
            print(
                f"site {n}: {result.provision_s:.1f} s "
                f"(route {result.route_delay_s or float('nan'):.2f} s)",
                flush=True,
            )
            if n == 1 or n % args.every == 0 or n == args.sites:
                wait = wait_quiet()
                point = Checkpoint(n, idle_probe(args.idle_seconds), wait)
                point.pages = page_times(actor, result.site_id)
                checkpoints.append(point)
                print(f"  n={n}: {point.idle.busy_pct:.1f} % busy", flush=True)
    finally:
        for proc in processes:
            _stop(proc)
        report(sites, checkpoints, stopped, var / f"density-{run}.csv")
        if not args.keep:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(remove_site, made))
            Site.objects.filter(pk__in=made).update(status=SiteStatus.DELETED, domain_claim=None)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def report(sites: list[SiteRun], points: list[Checkpoint], stopped: str, path: Path) -> None:
    if not points:
        return
    base = points[0].idle
    by_n = {s.n: s for s in sites}
    columns = ["dockerd", "containerd", "containerd-shim", "traefik", "php-fpm8.2", "python"]
    header = (
        f"{'n':>4} {'prov s':>7} {'route s':>7} {'busy %':>7} {'/site %':>7} {'forks/s':>7} "
        f"{'mem MB':>8} {'MB/site':>7} "
        + " ".join(f"{c[:9]:>9}" for c in columns)
        + f" {'list ms':>7} {'site ms':>7} {'dash ms':>7} {'q':>3}"
    )
    print("\n" + header)
    rows = []
    for point in points:
        site = by_n.get(point.n)
        idle = point.idle
        per_site = (idle.busy_pct - base.busy_pct) / point.n if point.n else 0.0
        mem_site = (idle.memory_mb - base.memory_mb) / point.n if point.n else 0.0
        pages = point.pages
        row = {
            "n": point.n,
            "provision_s": round(site.provision_s, 2) if site else "",
            "route_delay_s": round(site.route_delay_s, 2)
            if site and site.route_delay_s is not None
            else "",
            "idle_busy_pct": round(idle.busy_pct, 2),
            "busy_pct_per_site": round(per_site, 3),
            "forks_per_s": round(idle.forks_per_s, 1),
            "mem_used_mb": round(idle.memory_mb),
            "mem_per_site_mb": round(mem_site, 1),
            **{f"{c}_pct": round(idle.by_process.get(c, 0.0), 2) for c in [*WATCHED, "other"]},
            "unattributed_pct": round(idle.by_process.get("unattributed", 0.0), 2),
            "sites_list_ms": round(pages["sites_list"][0], 1) if pages else "",
            "site_page_ms": round(pages["site_page"][0], 1) if pages else "",
            "dashboard_ms": round(pages["dashboard"][0], 1) if pages else "",
            "max_queries": max(q for _, q in pages.values()) if pages else "",
            "quiet_wait_s": round(point.quiet_wait_s, 1),
        }
        rows.append(row)
        print(
            f"{point.n:>4} {row['provision_s']!s:>7} {row['route_delay_s']!s:>7} "
            f"{idle.busy_pct:>7.1f} {per_site:>7.3f} {idle.forks_per_s:>7.1f} "
            f"{idle.memory_mb:>8.0f} {mem_site:>7.1f} "
            + " ".join(f"{idle.by_process.get(c, 0.0):>9.2f}" for c in columns)
            + f" {row['sites_list_ms']!s:>7} {row['site_page_ms']!s:>7} "
            f"{row['dashboard_ms']!s:>7} {row['max_queries']!s:>3}"
        )
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if sites:
        with path.with_name(path.stem + "-sites.csv").open("w", newline="") as fh:
            site_writer = csv.DictWriter(fh, fieldnames=list(asdict(sites[0])))
            site_writer.writeheader()
            site_writer.writerows(asdict(s) for s in sites)
    ok = [s for s in sites if not s.error]
    if ok:
        last = [s.provision_s for s in ok[-10:]]
        first = [s.provision_s for s in ok[:10]]
        routes = [s.route_delay_s for s in ok if s.route_delay_s is not None]
        end = points[-1]
        print(
            f"\nprovision (submit → install screen): first 10 p50 {statistics.median(first):.1f} s;"
            f" last 10 p50 {statistics.median(last):.1f} s, p95 {_p(last, 0.95):.1f} s"
        )
        if routes:
            print(
                "route delay (nginx created → first 2xx/3xx): "
                f"p50 {statistics.median(routes):.2f} s, max {max(routes):.2f} s"
            )
        if end.n:
            print(
                f"idle at n = {end.n}: {end.idle.busy_pct:.1f} % of the machine busy "
                f"(baseline {base.busy_pct:.1f} %): "
                f"{(end.idle.busy_pct - base.busy_pct) / end.n:.3f} % per site, "
                f"{(end.idle.memory_mb - base.memory_mb) / end.n:.1f} MB per site"
            )
    if stopped:
        print(stopped)
    print(f"CSV: {path}")


if __name__ == "__main__":
    main()
