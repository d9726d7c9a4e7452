"""Issue 11, the panel at 5,000 sites: every list page costs the same number of queries
however big the farm, for an operator and for a tenant owner, and a list paginates.

Each page is rendered on a small farm, the farm grows (sites with backups, snapshots,
their RPO rows, operations with steps, alerts), and the page is rendered again: the
same queries, at most 12. Timings are ``benchmarks/pages.py``'s, not a test's. No page
here reaches restic, Docker or MariaDB (they are forbidden).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from itertools import count
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backups import policy
from backups.models import Backup, BackupKind, BackupStatus, RepositorySnapshot
from farm.models import Operation, OperationStep, Tenant, User
from monitoring.models import Alert
from sites import services
from sites.models import Site, SiteStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

MAX_QUERIES = 12
# A step an operator retried: its log names them (a tenant sees "an operator").
RETRIED_LOG = "--- retry by ops@farm.test ---\nrestic: repository is locked\n"
numbers = count(1)

LIST_PAGES = {
    "dashboard": lambda site: reverse("dashboard"),
    "sites list": lambda site: reverse("site_list"),
    "RPO ledger": lambda site: reverse("rpo_ledger"),
    "RPO badge": lambda site: reverse("rpo_badge", args=[site.pk]),
    "site page": lambda site: reverse("site_detail", args=[site.pk]),
    "site services": lambda site: reverse("site_services", args=[site.pk]),
    "restore: site": lambda site: reverse("restore_start"),
    "restore: point": lambda site: reverse("restore_wizard", args=[site.pk]),
    "backups list": lambda site: reverse("backup_list"),
    "operations list": lambda site: reverse("operation_list"),
    "alerts": lambda site: reverse("alert_list") + "?status=",
}
OPERATOR_PAGES = {
    "repository": lambda site: reverse("backup_repository"),
    **{
        f"admin {model}": (lambda url: lambda site: url)(f"/admin/{model}/")
        for model in (
            "backups/backup",
            "backups/backuppolicy",
            "backups/restore",
            "backups/repositorysnapshot",
            "backups/siterpo",
            "sites/site",
            "farm/operation",
            "farm/operationstep",
            "farm/tenant",
            "farm/user",
            "farm/membership",
            "monitoring/alert",
        )
    },
    "admin backup search": lambda site: "/admin/backups/backup/?q=grow",
    "admin step search": lambda site: "/admin/farm/operationstep/?q=grow",
    "admin step filter": lambda site: "/admin/farm/operationstep/?status__exact=succeeded",
}


@pytest.fixture(autouse=True)
def _nothing_leaves_the_panel() -> Iterator[None]:
    forbidden = mock.Mock(side_effect=AssertionError("a page reached an external system"))
    with (
        mock.patch("backups.restic.snapshots", forbidden),
        mock.patch("nodes.swarm.client", forbidden),
        mock.patch("nodes.mariadb.connect", forbidden),
    ):
        yield


def grow(tenants: list[Tenant], sites_each: int) -> None:
    """Sites for each tenant, each with 4 backups (and their snapshots, as the RPO check
    lists them), two operations of 3 steps with their logs (the latest failed after an
    operator's retry, as a site page shows it with its buttons) and an alert; then the
    RPO rows of them all."""
    now = timezone.now()
    sites = Site.objects.bulk_create(
        Site(
            tenant=t,
            domain=(domain := f"grow{next(numbers)}.{t.slug}.test"),
            domain_claim=domain,
            status=SiteStatus.ACTIVE,
        )
        for t in tenants
        for _ in range(sites_each)
    )
    backups = Backup.objects.bulk_create(
        Backup(
            site=s,
            kind=kind,
            status=BackupStatus.SUCCEEDED,
            snapshot_id=f"{next(numbers):064x}",
            bytes=1000,
        )
        for s in sites
        for kind in (BackupKind.DB, BackupKind.FILES, BackupKind.DB, BackupKind.CONFIG)
    )
    RepositorySnapshot.objects.bulk_create(
        RepositorySnapshot(
            snapshot_id=b.snapshot_id,
            short_id=b.snapshot_id[:8],
            site=b.site,
            kind=b.kind,
            time=now - timedelta(hours=1),
            bytes=b.bytes,
            listed_at=now,
        )
        for b in backups
    )
    operations = Operation.objects.bulk_create(
        Operation(
            kind="backup.site",
            target_type="site",
            target_id=str(s.pk),
            target_repr=s.domain,
            lock_name=f"site:{s.pk}",
            tenant=s.tenant,
            status=status,
            error="restic: repository is locked" if status == "failed" else "",
        )
        for s in sites
        for status in ("succeeded", "failed")
    )
    OperationStep.objects.bulk_create(
        OperationStep(
            operation=o,
            position=p,
            name=f"step{p}",
            label=f"Step {p}",
            status="failed" if o.status == "failed" and p == 3 else "succeeded",
            log=RETRIED_LOG if o.status == "failed" and p == 3 else f"step{p} done\n",
        )
        for o in operations
        for p in (1, 2, 3)
    )
    Alert.objects.bulk_create(
        Alert(
            fingerprint=f"grow-{s.pk}",
            name="SiteDown",
            summary=f"{s.domain} is down",
            tenant=s.tenant,
            site=s,
            started_at=now,
            last_seen_at=now,
        )
        for s in sites
    )
    watched = services.live_sites()
    policy.record_ledger(policy.measure(watched, []), now=now)


def queries_of(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, f"{url} answered {response.status_code}"
    return [q["sql"] for q in captured.captured_queries]


def assert_constant_in_n(user: User, page, tenant, other_tenant) -> list[str]:
    grow([tenant, other_tenant], 2)
    site = Site.objects.filter(tenant=tenant).order_by("pk").first()
    client = client_for(user)
    url = page(site)
    client.get(url)  # the first page of a session costs a few more
    small = queries_of(client, url)
    grow([tenant, other_tenant], 30)
    big = queries_of(client, url)
    assert len(big) == len(small), "\n".join(big)
    assert len(big) <= MAX_QUERIES, "\n".join(big)
    return big


@pytest.mark.parametrize("name", LIST_PAGES)
def test_a_list_page_costs_a_tenant_owner_the_same_queries_however_big_the_farm(
    name, owner, tenant, other_tenant
):
    assert_constant_in_n(owner, LIST_PAGES[name], tenant, other_tenant)


@pytest.mark.parametrize("name", [*LIST_PAGES, *OPERATOR_PAGES])
def test_a_list_page_costs_an_operator_the_same_queries_however_big_the_farm(
    name, operator, tenant, other_tenant
):
    page = {**LIST_PAGES, **OPERATOR_PAGES}[name]
    queries = assert_constant_in_n(operator, page, tenant, other_tenant)
    if name.startswith("admin"):
        assert not [q for q in queries if "DISTINCT" in q], "no DISTINCT to build a filter"


def test_the_restore_wizard_lists_one_page_of_sites_for_an_operator(operator, tenant):
    grow([tenant], 60)
    response = client_for(operator).get(reverse("restore_start"))
    assert len(response.context["sites"]) == 50
    assert response.context["page"].paginator.count == 60
    found = client_for(operator).get(reverse("restore_start"), {"q": "grow1."})
    assert {s.domain for s in found.context["sites"]} <= {
        s.domain for s in Site.objects.filter(domain__contains="grow1.")
    }


def test_the_restore_wizard_lists_only_the_tenants_an_owner_owns(owner, member, tenant):
    grow([tenant], 3)
    assert len(client_for(owner).get(reverse("restore_start")).context["sites"]) == 3
    assert client_for(member).get(reverse("restore_start")).context["sites"] == []


def test_the_admin_backup_search_matches_a_domain_or_the_start_of_a_snapshot_id(operator, tenant):
    grow([tenant], 3)
    site = Site.objects.order_by("pk").first()
    assert site is not None
    backup = Backup.objects.filter(site=site).first()
    assert backup is not None
    Backup.objects.filter(pk=backup.pk).update(snapshot_id="c0ffee" + "1" * 58)
    client = client_for(operator)
    by_domain = client.get("/admin/backups/backup/", {"q": site.domain})
    assert {b.site_id for b in by_domain.context["cl"].result_list} == {site.pk}
    by_id = client.get("/admin/backups/backup/", {"q": "c0ffee11"})
    assert [b.pk for b in by_id.context["cl"].result_list] == [backup.pk]


def test_the_repository_page_reads_cluster_backups_through_an_index():
    newest = Backup.objects.filter(kind=BackupKind.CLUSTER)[:30]
    if connection.vendor == "sqlite":
        plan = newest.explain()
        assert "backup_kind_created_idx" in plan and "TEMP B-TREE" not in plan
    else:  # MariaDB's optimiser picks a full scan of a near-empty table: check the index
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, Backup._meta.db_table)
        assert constraints["backup_kind_created_idx"]["columns"][:2] == ["kind", "created_at"]


def plan_of(user: User, url: str, table: str) -> str:
    """SQLite's plan for the one query ``url`` makes on ``table``."""
    with CaptureQueriesContext(connection) as captured:
        client_for(user).get(url)
    (sql,) = [q["sql"] for q in captured if f'FROM "{table}"' in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return " ".join(str(row) for row in cursor.fetchall())


def test_the_dashboard_counts_a_days_backups_in_an_index_alone(operator):
    """The farm's backups of the last 24 hours (a site's every day) are counted from the
    index on (created_at, status): reading each row would grow the dashboard with N."""
    if connection.vendor == "sqlite":
        plan = plan_of(operator, reverse("dashboard"), "backups_backup")
        assert "COVERING INDEX backup_created_status_idx" in plan, plan
    else:  # MariaDB's optimiser may scan a near-empty table: check the index itself
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, Backup._meta.db_table)
        assert constraints["backup_created_status_idx"]["columns"] == ["created_at", "status"]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's planner")
def test_the_dashboard_counts_an_owners_sites_through_their_tenant_not_every_status(owner):
    plan = plan_of(owner, reverse("dashboard"), "sites_site")
    assert "INDEX sites_site_tenant_id" in plan and "sites_site_status" not in plan, plan


# -- the seed ---------------------------------------------------------------------------


def test_seed_scale_fills_an_empty_database_and_refuses_a_second_time():
    call_command("seed_scale", sites=12, operations=30, alerts=7)
    assert Site.objects.count() == 12 and Tenant.objects.count() == 200
    assert Backup.objects.filter(site__isnull=False).count() == 12 * 20
    assert OperationStep.objects.count() == 30 * 8 and Alert.objects.count() == 7
    listed = Backup.objects.filter(site__isnull=False).exclude(snapshot_id="").count()
    assert RepositorySnapshot.objects.count() == listed
    assert policy.last_checked() is not None
    with pytest.raises(CommandError, match="already has 12 sites"):
        call_command("seed_scale", sites=12)


def test_seed_scale_never_runs_in_production(settings):
    settings.FARM_ENV = "production"
    with pytest.raises(CommandError, match="FARM_ENV"):
        call_command("seed_scale", sites=1)
    assert not Site.objects.exists()
