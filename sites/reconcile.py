"""Compare the sites the panel knows with what Swarm, MariaDB and the disk hold.

Drift: a live site missing a piece it should have (a service, its network, its
database or user, its directory). Orphans: stacks, networks, secrets, configs,
databases or directories named for a site that is not live. The report is
kept; repairing a drifted site is re-running its idempotent provision steps.
Traefik's routes are repaired on the spot: each run writes back every route the
routing Redis lost (and drops those of sites that are gone), and reports them.

The panel and the schedule run it as the operation ``site.reconcile``
(``sites.operations.reconcile``, one at a time, with live progress); the
``reconcile`` command runs the same functions in its own process.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from farm.errors import FarmError
from nodes import mariadb
from nodes.swarm import STACK_LABEL, client, translate_errors
from sites.models import ReconcileReport, Site, SiteStatus
from sites.routing import sync_routes
from sites.stack import network_name, stack_name

_STACK = re.compile(r"^wp-([0-9]+)$")
# A site that is being created or deleted is expected to be half-built.
EXPECTED_COMPLETE = (SiteStatus.ACTIVE, SiteStatus.SUSPENDED)


@dataclass(frozen=True)
class Finding:
    kind: str  # "drift" or "orphan"
    what: str
    detail: str
    site_id: int | None = None


def _site_id(stack: str) -> int | None:
    match = _STACK.match(stack)
    return int(match.group(1)) if match else None


def find_drift() -> list[Finding]:
    findings: list[Finding] = []
    sites = {s.pk: s for s in Site.objects.exclude(status=SiteStatus.DELETED)}
    complete = {pk: s for pk, s in sites.items() if s.status in EXPECTED_COMPLETE}
    cli = client()
    with translate_errors("Reading the Swarm for reconcile"):
        services = cli.api.services()
        networks = cli.networks.list()
        secrets = cli.secrets.list()
        configs = cli.configs.list()
    by_stack: dict[int, set[str]] = {}
    for svc in services:
        stack = svc["Spec"].get("Labels", {}).get(STACK_LABEL, "")
        site_id = _site_id(stack)
        if site_id is None:
            continue
        by_stack.setdefault(site_id, set()).add(svc["Spec"]["Name"])
        if site_id not in sites:
            findings.append(
                Finding(
                    "orphan", f"service {svc['Spec']['Name']}", "belongs to no live site", site_id
                )
            )
    network_names = {n.name for n in networks}
    for net in networks:
        site_id = _site_id((net.attrs.get("Labels") or {}).get(STACK_LABEL, ""))
        if site_id is not None and site_id not in sites:
            findings.append(
                Finding("orphan", f"network {net.name}", "belongs to no live site", site_id)
            )
    objects: list[tuple[Any, str]] = [
        *((s, "secret") for s in secrets),
        *((c, "config") for c in configs),
    ]
    for obj, kind in objects:
        labels = obj.attrs.get("Spec", {}).get("Labels") or {}
        site_id = _site_id(labels.get(STACK_LABEL, ""))
        if site_id is not None and site_id not in sites:
            findings.append(
                Finding("orphan", f"{kind} {obj.name}", "belongs to no live site", site_id)
            )
    for site_id, site in complete.items():
        stack = stack_name(site_id)
        wanted = {f"{stack}_nginx", f"{stack}_php"} | (
            {f"{stack}_redis"} if site.cache_enabled else set()
        )
        for missing in sorted(wanted - by_stack.get(site_id, set())):
            findings.append(
                Finding(
                    "drift", f"service {missing}", f"{site.domain} has no such service", site_id
                )
            )
        if network_name(site_id) not in network_names:
            findings.append(
                Finding(
                    "drift",
                    f"network {network_name(site_id)}",
                    f"{site.domain}'s network is missing",
                    site_id,
                )
            )
    findings += _database_findings(sites, complete)
    findings += _directory_findings(sites, complete)
    return findings


def _database_findings(sites: dict[int, Site], complete: dict[int, Site]) -> list[Finding]:
    findings = []
    schemas = set(mariadb.site_databases())
    users = set(mariadb.site_users())
    for name in sorted(schemas):
        site_id = int(name.split("_")[1])
        if site_id not in sites:
            findings.append(
                Finding("orphan", f"database {name}", "belongs to no live site", site_id)
            )
    for name in sorted(users):
        site_id = int(name.split("_")[1])
        if site_id not in sites:
            findings.append(
                Finding("orphan", f"database user {name}", "belongs to no live site", site_id)
            )
    for site_id, site in complete.items():
        if site.db_name and site.db_name not in schemas:
            findings.append(
                Finding(
                    "drift",
                    f"database {site.db_name}",
                    f"{site.domain}'s database is missing",
                    site_id,
                )
            )
        if site.db_user and site.db_user not in users:
            findings.append(
                Finding(
                    "drift",
                    f"database user {site.db_user}",
                    f"{site.domain}'s database user is missing",
                    site_id,
                )
            )
    return findings


def _directory_findings(sites: dict[int, Site], complete: dict[int, Site]) -> list[Finding]:
    findings = []
    root = Path(settings.FARM_SITES_ROOT)
    present = {p.name for p in root.iterdir() if p.is_dir()} if root.exists() else set()
    kept = set(Site.objects.filter(status=SiteStatus.DELETED).values_list("pk", flat=True))
    for name in sorted(present):
        site_id = _site_id(name)
        if site_id is not None and site_id not in sites and site_id not in kept:
            findings.append(
                Finding("orphan", f"directory {root / name}", "belongs to no site", site_id)
            )
    for site_id, site in complete.items():
        if stack_name(site_id) not in present:
            findings.append(
                Finding(
                    "drift",
                    f"directory {root / stack_name(site_id)}",
                    f"{site.domain}'s files are missing",
                    site_id,
                )
            )
    return findings


def restore_routes() -> list[Finding]:
    """Resync Traefik's routes; what had to be written or removed, as findings."""
    report = sync_routes()
    findings = [
        Finding(
            "drift", f"route {name}", "was missing or different: written again", _route_site(name)
        )
        for name in report.written
    ]
    findings += [
        Finding("orphan", f"route {name}", "belonged to no live site: removed", _route_site(name))
        for name in report.removed
    ]
    return findings


def _route_site(name: str) -> int | None:
    return _site_id(name.removeprefix("maint-"))


def keep_report(
    findings: Sequence[Finding | dict[str, Any]], *, error: str = ""
) -> ReconcileReport:
    """Record one comparison: its findings (as dataclasses or their dicts) and, when it
    could not be made in full, why."""
    rows = [asdict(f) if isinstance(f, Finding) else dict(f) for f in findings]
    return ReconcileReport.objects.create(
        findings=rows,
        drift=sum(f["kind"] == "drift" for f in rows),
        orphans=sum(f["kind"] == "orphan" for f in rows),
        error=error,
    )


def run_reconcile() -> ReconcileReport:
    """Both comparisons in this process, whatever one of them raises (the command)."""
    errors = []
    try:
        findings = restore_routes()
    except FarmError as exc:
        findings = []
        errors.append(exc.message)
    try:
        findings += find_drift()
    except FarmError as exc:
        errors.append(exc.message)
    return keep_report(findings, error="; ".join(errors))
