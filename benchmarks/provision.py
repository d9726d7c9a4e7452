"""Benchmark: submit → WordPress install screen, for N sites in a row on the local farm.

    FARM_VAR_DIR=var/bench .venv/bin/python -m benchmarks.provision [--sites 5]

Runs a real qcluster, creates sites through the same service the New site form
calls, and polls Traefik (Host header) until each answers with the install
screen. Prints per-site wall time, p50 and max, and how the time splits
between the panel's own work and waiting on Swarm (tasks starting, health
checks, Traefik noticing the route). Cleans up what it made.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

import requests
from django.conf import settings

from benchmarks.common import ROOT, prepare_farm, remove_site
from farm.models import Operation
from sites import services

# Steps whose time is spent waiting for Swarm to start and check tasks, or for
# Traefik to pick the route up; the rest is the panel's own work (and API calls).
WAITING_STEPS = {"converge", "reachable"}
LAST_BEFORE_INSTALL_SCREEN = "reachable"


def install_screen_up(domain: str) -> bool:
    try:
        response = requests.get(
            f"{settings.FARM_EDGE_URL}/wp-admin/install.php",
            headers={"Host": domain},
            timeout=5,
            allow_redirects=False,
        )
    except requests.RequestException:
        return False
    return response.status_code == 200 and "wp-core-ui" in response.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=5)
    args = parser.parse_args()
    tenant, actor = prepare_farm()
    log = (ROOT / "var" / "bench-qcluster.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    created_ids: list[int] = []
    rows = []
    try:
        time.sleep(3)  # let the cluster start
        run = uuid.uuid4().hex[:6]
        for i in range(args.sites):
            domain = f"bench-{run}-{i}.localhost"
            submitted = time.monotonic()
            created = services.create_site(
                tenant=tenant, domain=domain, image_choice="php8.2", cache_enabled=True, actor=actor
            )
            created_ids.append(created.site.pk)
            while not install_screen_up(domain):
                op = Operation.objects.get(pk=created.operation.pk)
                if op.status == "failed":
                    raise SystemExit(f"{domain}: {op.error}")
                time.sleep(0.1)
            wall = time.monotonic() - submitted
            op = Operation.objects.get(pk=created.operation.pk)
            while not op.is_finished:
                time.sleep(0.1)
                op.refresh_from_db()
            steps = {s.name: (s.duration_ms or 0) / 1000 for s in op.steps.order_by("position")}
            # Only the steps up to "reachable" stand between submit and the install
            # screen; monitoring and backups run after it is already up.
            names = list(steps)
            before = names[: names.index(LAST_BEFORE_INSTALL_SCREEN) + 1]
            waiting = sum(steps[k] for k in before if k in WAITING_STEPS)
            panel = sum(steps[k] for k in before) - waiting
            queued = (op.started_at - op.created_at).total_seconds() if op.started_at else 0
            rows.append((domain, wall, queued, panel, waiting, steps))
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        for site_id in created_ids:
            remove_site(site_id)

    print(f"\n{'site':<28} {'submit→install':>14} {'queue':>7} {'panel':>7} {'swarm wait':>10}")
    for domain, wall, queued, panel, waiting, _ in rows:
        print(f"{domain:<28} {wall:>13.1f}s {queued:>6.1f}s {panel:>6.2f}s {waiting:>9.1f}s")
    walls = [r[1] for r in rows]
    total_panel = sum(r[3] for r in rows)
    total_wait = sum(r[4] for r in rows)
    total_queue = sum(r[2] for r in rows)
    whole = sum(walls)
    print(
        f"\np50 {statistics.median(walls):.1f} s, max {max(walls):.1f} s "
        f"(targets: p50 < 30 s, max < 60 s)"
    )
    print(
        f"share of the time: waiting on Swarm/Traefik {100 * total_wait / whole:.0f}%, "
        f"panel's own steps {100 * total_panel / whole:.0f}%, "
        f"queue pick-up {100 * total_queue / whole:.0f}%, "
        f"rest (polling granularity) "
        f"{100 * (whole - total_wait - total_panel - total_queue) / whole:.0f}%"
    )
    slowest = max(rows, key=lambda r: r[1])
    print("steps of the slowest:", ", ".join(f"{k} {v:.2f}s" for k, v in slowest[5].items()))
    print(
        "(monitoring and backups run after the install screen is up: not in the shares;"
        " the first site's backups step also creates the restic repository)"
    )


if __name__ == "__main__":
    main()
