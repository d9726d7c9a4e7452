"""Benchmark: the panel's pages on a large farm, for an operator and a tenant owner.

    FARM_ENV=development nice -n 19 .venv/bin/python -m benchmarks.pages --sites 500 5000

For each size a database of its own (``var/pages-<n>``, or ``--var-dir`` for one size)
is migrated and, when empty, filled by ``manage.py seed_scale --sites <n>`` (200
tenants, 20 backups per site, 30,000 operations of 8 steps, 2,000 alerts, the
repository's snapshot listing). Then each page is rendered with Django's test client,
DEBUG off, twice to warm up and ``--runs`` times measured: the median time, the
queries of one render and the bytes of the body. The operator sees the whole farm;
the owner is the owner of one tenant (1/200 of the sites). Nothing here calls Docker,
restic or MariaDB, unless a page does. Prints one table, the sizes side by side, so
that a page whose cost grows with the farm shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse

from benchmarks import ROOT
from farm.models import User
from sites.management.commands.seed_scale import OPERATOR_EMAIL, owner_email
from sites.models import Site, SiteStatus

OPERATOR, OWNER = "operator", "owner"


@dataclass
class PageTime:
    page: str
    role: str
    ms: float
    queries: int
    bytes: int
    status: int


def pages(site_id: int, *, operator: bool) -> dict[str, str]:
    """The pages to render: every list of the panel, a site's, the wizard's first two
    steps; for an operator also the repository and the admin's changelists."""
    urls = {
        "dashboard": reverse("dashboard"),
        "sites list": reverse("site_list"),
        "site page": reverse("site_detail", args=[site_id]),
        "RPO badge": reverse("rpo_badge", args=[site_id]),
        "RPO ledger": reverse("rpo_ledger"),
        "restore: site": reverse("restore_start"),
        "restore: point": reverse("restore_wizard", args=[site_id]),
        "backups list": reverse("backup_list"),
        "operations list": reverse("operation_list"),
        "alerts": reverse("alert_list") + "?status=",
    }
    if operator:
        urls["repository"] = reverse("backup_repository")
        for model in (
            "backups/backup",
            "backups/backuppolicy",
            "backups/restore",
            "sites/site",
            "farm/operation",
            "farm/operationstep",
            "farm/tenant",
            "farm/user",
            "farm/membership",
            "farm/auditevent",
            "monitoring/alert",
        ):
            urls[f"admin {model.split('/')[1]}"] = f"/admin/{model}/"
        urls["admin backup search"] = "/admin/backups/backup/?q=s4242"
        urls["admin step filter"] = "/admin/farm/operationstep/?status__exact=succeeded"
    return urls


def measure(client: Client, role: str, urls: dict[str, str], runs: int) -> list[PageTime]:
    out = []
    for name, url in urls.items():
        client.get(url)
        client.get(url)  # warm: a panel that has been up a while
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        out.append(
            PageTime(
                page=name,
                role=role,
                ms=round(statistics.median(times), 1),
                queries=len(queries.captured_queries),
                bytes=len(response.content),
                status=response.status_code,
            )
        )
    return out


def measure_here(n_sites: int, runs: int) -> list[PageTime]:
    """Seed this process's database if it is empty, then time every page."""
    call_command("migrate", verbosity=0)
    if not Site.objects.exists():
        call_command("seed_scale", sites=n_sites, stdout=sys.stderr)
    operator = User.objects.get(email=OPERATOR_EMAIL)
    owner = User.objects.get(email=owner_email(0))
    site = (
        Site.objects.filter(tenant__memberships__user=owner, status=SiteStatus.ACTIVE)
        .order_by("pk")
        .first()
    )
    assert site is not None
    results = []
    with override_settings(DEBUG=False):
        for role, user in ((OPERATOR, operator), (OWNER, owner)):
            client = Client()
            client.force_login(user)
            results += measure(client, role, pages(site.pk, operator=role == OPERATOR), runs)
    return results


def run_size(n_sites: int, runs: int, var_dir: Path) -> list[PageTime]:
    """One size in a process of its own: each size has its own database."""
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FARM_VAR_DIR": str(var_dir)}
    env.setdefault("FARM_ENV", "development")
    argv = [sys.executable, "-m", "benchmarks.pages", "--here", "--runs", str(runs)]
    done = subprocess.run(
        [*argv, "--sites", str(n_sites)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    return [PageTime(**row) for row in json.loads(done.stdout.splitlines()[-1])]


def table(by_size: dict[int, list[PageTime]]) -> str:
    sizes = list(by_size)
    head = f"{'page':24} {'role':8}" + "".join(
        f" | {f'{n} sites: ms':>15} {'queries':>7} {'bytes':>9}" for n in sizes
    )
    lines = [head, "-" * len(head)]
    keyed = {n: {(r.page, r.role): r for r in rows} for n, rows in by_size.items()}
    for r in by_size[sizes[0]]:
        cells = ""
        for n in sizes:
            row = keyed[n].get((r.page, r.role))
            if row is None:
                cells += f" | {'':>15} {'':>7} {'':>9}"
                continue
            flag = "" if row.status == 200 else f" [{row.status}]"
            cells += f" | {row.ms:>15.1f} {row.queries:>7} {row.bytes:>9}{flag}"
        lines.append(f"{r.page:24} {r.role:8}{cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[5000])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--var-dir", type=Path, help="an already seeded var dir (one size)")
    parser.add_argument("--here", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.here:
        rows = measure_here(args.sites[0], args.runs)
        print(json.dumps([asdict(r) for r in rows]))
        return
    if args.var_dir and len(args.sites) != 1:
        parser.error("--var-dir goes with one --sites size")
    by_size = {
        n: run_size(n, args.runs, args.var_dir or ROOT / "var" / f"pages-{n}") for n in args.sites
    }
    print(table(by_size))


if __name__ == "__main__":
    main()
