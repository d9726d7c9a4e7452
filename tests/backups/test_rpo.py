"""The RPO ledger: what is really in the restic repository, site by site, against 6 h.

A real local restic repository (restic 0.14) with backdated snapshots stands in for
time passing; nothing here needs MariaDB or Swarm.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backups import policy, restic
from backups.models import Backup, BackupKind, BackupStatus, RepositorySnapshot, SiteRpo
from farm.models import Tenant
from monitoring.models import Alert, AlertStatus
from sites import services
from sites.models import Site, SiteStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


PASSWORD = "only for tests"
# Sites get fixed ids, so that one repository made per module (restic is slow to
# start) serves every test: each test works on a copy.
A, B, OLD, NEW, EDGE, FILES_ONLY, SHRINK = range(101, 108)


def snapshot(
    repo: restic.Repository, site_id: int, kind: str, *, hours_ago: float, tmp_path: Path
) -> str:
    """A snapshot of ``kind`` for the site taken ``hours_ago``; returns its id."""
    source = tmp_path / "source" / f"{site_id}-{kind}-{hours_ago}"
    source.mkdir(parents=True)
    (source / "dump.sql").write_text(f"-- {site_id} {kind} {hours_ago}\n")
    taken = timezone.now() - timedelta(hours=hours_ago)
    summary = restic.backup_paths(
        repo, [source], tags={"site": str(site_id), "kind": kind}, time=taken
    )
    return summary.snapshot_id


@pytest.fixture(scope="module")
def made_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A: database snapshots 7 h and 1 h old. B: only a 7 h old one. OLD and NEW: none.
    EDGE: 5.5 h old. FILES_ONLY: files 1 h old. SHRINK: two of each kind, 3 h and 2 h old."""
    tmp = tmp_path_factory.mktemp("restic")
    repo = restic.Repository(str(tmp / "repo"), PASSWORD, {}, tmp / "cache")
    restic.ensure_repository(repo)
    made = [
        ("a_old", A, "db", 7),
        ("a_new", A, "db", 1),
        ("b", B, "db", 7),
        ("edge", EDGE, "db", 5.5),
        ("files_only", FILES_ONLY, "files", 1),
        ("shrink_db_old", SHRINK, "db", 3),
        ("shrink_db_new", SHRINK, "db", 2),
        ("shrink_files_old", SHRINK, "files", 3),
        ("shrink_files_new", SHRINK, "files", 2),
    ]
    ids = {
        name: snapshot(repo, site_id, kind, hours_ago=hours, tmp_path=tmp)
        for name, site_id, kind, hours in made
    }
    return tmp / "repo", ids


@pytest.fixture
def repo(settings, tmp_path: Path, made_repo) -> Iterator[restic.Repository]:
    """The farm's repository (a copy of the module's), as the panel finds it from its settings."""
    shutil.copytree(made_repo[0], tmp_path / "repo")
    settings.FARM_BACKUP_REPOSITORY = str(tmp_path / "repo")
    settings.FARM_RESTIC_PASSWORD = PASSWORD
    settings.FARM_RESTIC_CACHE_DIR = str(tmp_path / "restic-cache")
    cache.clear()  # the ledger caches the listing for a minute
    yield restic.repository_from_settings()
    cache.clear()


@pytest.fixture
def snapshot_ids(made_repo) -> dict[str, str]:
    return made_repo[1]


def make_site(
    tenant: Tenant, domain: str, *, pk: int | None = None, created_hours_ago: float = 24
) -> Site:
    site = Site.objects.create(pk=pk, tenant=tenant, domain=domain, status=SiteStatus.ACTIVE)
    Site.objects.filter(pk=site.pk).update(
        created_at=timezone.now() - timedelta(hours=created_hours_ago)
    )
    site.refresh_from_db()
    return site


def recorded(site: Site, snapshot_id: str, size: int, kind: str = BackupKind.DB) -> Backup:
    return Backup.objects.create(
        site=site, kind=kind, status=BackupStatus.SUCCEEDED, snapshot_id=snapshot_id, bytes=size
    )


@pytest.fixture
def farm(repo, tenant) -> dict[str, Site]:
    """The four sites of the ledger's specification (OLD created 10 h ago, NEW 1 h ago)."""
    return {
        "a": make_site(tenant, "a.acme.test", pk=A),
        "b": make_site(tenant, "b.acme.test", pk=B),
        "old": make_site(tenant, "old.acme.test", pk=OLD, created_hours_ago=10),
        "new": make_site(tenant, "new.acme.test", pk=NEW, created_hours_ago=1),
    }


def rows_by_domain(sites: list[Site]) -> dict[str, policy.LedgerRow]:
    """The rows the RPO check measures: the repository listed, the listing recorded."""
    listing = policy.list_repository()
    policy.record_listing(listing)
    return {row.site.domain: row for row in policy.measure(sites, listing)}


def test_the_ledger_measures_each_site_against_six_hours(farm):
    rows = rows_by_domain(list(farm.values()))

    a = rows["a.acme.test"]
    assert a.state == "ok" and not a.breached
    assert a.snapshots == 2
    assert a.time_left is not None
    assert timedelta(hours=4, minutes=50) < a.time_left <= timedelta(hours=5)
    b = rows["b.acme.test"]
    assert b.state == "breached" and b.time_left is not None and b.time_left < timedelta(0)
    old = rows["old.acme.test"]
    assert old.breached and old.newest_db is None and old.age is None, "no snapshot in 10 h"
    new = rows["new.acme.test"]
    assert new.state == "pending" and not new.breached, "a new site gets one RPO period"


def test_a_site_within_the_last_hour_of_its_rpo_is_a_warning(repo, tenant):
    site = make_site(tenant, "edge.acme.test", pk=EDGE)
    assert rows_by_domain([site])["edge.acme.test"].state == "warning"


def test_the_ledger_trusts_the_repository_not_the_backup_rows(farm):
    # The panel says B was backed up a minute ago, but that snapshot is not in the
    # repository (retention, an accident): B is still past its RPO.
    recorded(farm["b"], "f" * 64, 1000)
    recorded(farm["new"], "e" * 64, 1000)
    rows = rows_by_domain([farm["b"], farm["new"]])
    assert rows["b.acme.test"].breached
    assert rows["new.acme.test"].newest_db is None
    assert rows["new.acme.test"].snapshots == 0


def test_files_snapshots_do_not_count_towards_the_database_rpo(repo, tenant):
    site = make_site(tenant, "files.acme.test", pk=FILES_ONLY)
    row = rows_by_domain([site])["files.acme.test"]
    assert row.breached and row.newest_db is None
    assert row.newest_files is not None and row.snapshots == 1


def test_size_drops_of_more_than_half_are_listed(repo, tenant, snapshot_ids):
    site = make_site(tenant, "shrink.acme.test", pk=SHRINK)
    db_old, db_new = snapshot_ids["shrink_db_old"], snapshot_ids["shrink_db_new"]
    files_old, files_new = snapshot_ids["shrink_files_old"], snapshot_ids["shrink_files_new"]
    recorded(site, db_old, 10_000)
    recorded(site, db_new, 4_000)
    recorded(site, files_old, 10_000, kind=BackupKind.FILES)
    recorded(site, files_new, 5_000, kind=BackupKind.FILES)

    drops = rows_by_domain([site])["shrink.acme.test"].drops

    assert [(d.kind, d.snapshot_id, d.bytes, d.previous_bytes) for d in drops] == [
        ("db", db_new, 4_000, 10_000)
    ], "files lost exactly half: not more than half"


def test_the_pages_show_what_the_last_check_read_until_the_next_one(farm, repo, tmp_path, owner):
    new = farm["new"]
    badge = reverse("rpo_badge", args=[new.pk])
    assert 'data-state="pending"' in client_for(owner).get(badge).content.decode()
    assert "not measured yet" in client_for(owner).get(badge).content.decode()
    services.check_rpo()
    snapshot(repo, new.pk, "db", hours_ago=0.1, tmp_path=tmp_path)
    assert SiteRpo.objects.get(site=new).snapshots == 0, "as of the last check"
    services.check_rpo()
    assert SiteRpo.objects.get(site=new).snapshots == 1
    assert 'data-state="ok"' in client_for(owner).get(badge).content.decode()


def test_the_check_records_the_listing_and_keeps_only_what_is_listed(repo, tenant, snapshot_ids):
    site = make_site(tenant, "a.acme.test", pk=A)
    recorded(site, snapshot_ids["a_new"], 1234)
    RepositorySnapshot.objects.create(
        snapshot_id="0" * 64,
        short_id="00000000",
        kind="db",
        time=timezone.now(),
        listed_at=timezone.now(),
    )
    services.check_rpo()
    rows = {r.snapshot_id: r for r in RepositorySnapshot.objects.all()}
    assert "0" * 64 not in rows, "no longer in the repository: gone"
    assert len(rows) == len(snapshot_ids)
    assert rows[snapshot_ids["a_new"]].bytes == 1234 and rows[snapshot_ids["a_new"]].site_id == A
    assert rows[snapshot_ids["b"]].site_id == B and rows[snapshot_ids["b"]].kind == "db"


# -- alerts ---------------------------------------------------------------------------


def firing_rpo_alerts() -> dict[int | None, Alert]:
    alerts = Alert.objects.filter(source="rpo", status=AlertStatus.FIRING)
    return {alert.site_id: alert for alert in alerts}


def test_check_rpo_raises_one_alert_per_breached_site_and_resolves_it(farm, repo, tmp_path):
    assert services.check_rpo() == {"breached": 2}
    assert services.check_rpo() == {"breached": 2}
    firing = firing_rpo_alerts()
    assert set(firing) == {farm["b"].pk, farm["old"].pk}
    assert Alert.objects.filter(source="rpo").count() == 2, "raised again: the same alert"
    assert "no snapshot at all" in firing[farm["old"].pk].description
    assert firing[farm["b"].pk].severity == "critical"
    assert firing[farm["b"].pk].tenant_id == farm["b"].tenant_id

    snapshot(repo, farm["b"].pk, "db", hours_ago=0, tmp_path=tmp_path)
    assert services.check_rpo() == {"breached": 1}
    assert set(firing_rpo_alerts()) == {farm["old"].pk}
    resolved = Alert.objects.get(site=farm["b"], source="rpo")
    assert resolved.status == AlertStatus.RESOLVED and resolved.resolved_at is not None


def test_deleted_sites_are_not_watched(farm):
    Site.objects.filter(pk__in=[farm["b"].pk, farm["old"].pk]).update(status=SiteStatus.DELETED)
    assert services.check_rpo() == {"breached": 0}
    assert not firing_rpo_alerts()


def test_the_alert_of_a_site_deleted_while_breached_is_resolved(farm):
    services.check_rpo()
    Site.objects.filter(pk=farm["b"].pk).update(status=SiteStatus.DELETED)
    assert services.check_rpo() == {"breached": 1}
    assert set(firing_rpo_alerts()) == {farm["old"].pk}


def test_before_the_first_backup_there_is_no_repository_and_no_site_has_a_snapshot(
    farm, settings, tmp_path
):
    settings.FARM_BACKUP_REPOSITORY = str(tmp_path / "not-created-yet")
    assert services.check_rpo() == {"breached": 3}, "all but NEW, still within its first 6 h"
    assert not Alert.objects.filter(fingerprint=policy.UNREADABLE_ALERT).exists()
    assert not (tmp_path / "not-created-yet").exists(), "the check creates nothing"


def test_a_farm_without_sites_does_not_read_the_repository(settings, tmp_path):
    settings.FARM_RESTIC_PASSWORD = "not-the-password"  # would fail, were it read
    assert services.check_rpo() == {"breached": 0}


def test_an_unreadable_repository_is_an_alert_until_it_reads_again(farm, settings):
    settings.FARM_RESTIC_PASSWORD = "not-the-password"
    with pytest.raises(restic.ResticError):
        services.check_rpo()
    unreadable = Alert.objects.get(fingerprint=policy.UNREADABLE_ALERT)
    assert unreadable.status == AlertStatus.FIRING and unreadable.severity == "critical"
    assert "password" in unreadable.description

    settings.FARM_RESTIC_PASSWORD = PASSWORD
    assert services.check_rpo() == {"breached": 2}
    unreadable.refresh_from_db()
    assert unreadable.status == AlertStatus.RESOLVED


# -- the pages --------------------------------------------------------------------------


def test_the_ledger_page_lists_the_breached_first_and_counts_them(farm, operator):
    services.check_rpo()
    response = client_for(operator).get(reverse("rpo_ledger"))
    assert response.status_code == 200
    assert response.context["breached"] == 2
    states = [(r.site.domain, r.state) for r in response.context["rows"]]
    assert {d for d, s in states[:2]} == {"b.acme.test", "old.acme.test"}
    assert set(states[2:]) == {("a.acme.test", "ok"), ("new.acme.test", "pending")}
    body = response.content.decode()
    assert 'data-site="b.acme.test" data-state="breached"' in body
    assert "<strong>2</strong> site(s) past the RPO" in body


def test_tenants_see_only_their_sites_in_the_ledger(farm, repo, tmp_path, outsider, owner):
    globex = outsider.memberships.get().tenant
    theirs = make_site(globex, "globex.test")
    snapshot(repo, theirs.pk, "db", hours_ago=1, tmp_path=tmp_path)
    services.check_rpo()

    outsider_rows = client_for(outsider).get(reverse("rpo_ledger")).context["rows"]
    assert [r.site.domain for r in outsider_rows] == ["globex.test"]
    owner_page = client_for(owner).get(reverse("rpo_ledger"))
    assert "globex.test" not in {r.site.domain for r in owner_page.context["rows"]}
    assert owner_page.context["breached"] == 2


def test_the_ledger_page_shows_a_repository_the_check_could_not_read(farm, owner, settings):
    settings.FARM_RESTIC_PASSWORD = "not-the-password"
    with pytest.raises(restic.ResticError):
        services.check_rpo()
    response = client_for(owner).get(reverse("rpo_ledger"))
    assert response.status_code == 200
    assert "could not read the repository" in response.content.decode()
    assert {r.state for r in response.context["rows"]} == {"pending"}, "not measured: no alarm"


def test_the_ledger_page_is_read_only(owner):
    assert client_for(owner).post(reverse("rpo_ledger")).status_code == 405


def test_the_rpo_badge_of_a_site(farm, owner, outsider):
    services.check_rpo()
    url = reverse("rpo_badge", args=[farm["a"].pk])
    body = client_for(owner).get(url).content.decode()
    assert 'data-state="ok"' in body
    breached = client_for(owner).get(reverse("rpo_badge", args=[farm["b"].pk]))
    assert 'data-state="breached"' in breached.content.decode()
    assert client_for(outsider).get(url).status_code == 404
    assert client_for(owner).post(url).status_code == 405


def test_the_ledger_page_costs_a_tenant_the_same_however_big_the_farm(repo, owner, other_tenant):
    client = client_for(owner)
    client.get(reverse("rpo_ledger"))
    with CaptureQueriesContext(connection) as small:
        client.get(reverse("rpo_ledger"))
    Site.objects.bulk_create(
        Site(tenant=other_tenant, domain=f"s{i}.globex.test", status=SiteStatus.ACTIVE)
        for i in range(50)
    )
    with CaptureQueriesContext(connection) as big:
        client.get(reverse("rpo_ledger"))
    assert len(big.captured_queries) == len(small.captured_queries)


def test_the_ledger_page_is_paginated_and_costs_the_same_however_many_sites(repo, operator, tenant):
    make_site(tenant, "a.acme.test", pk=A)
    services.check_rpo()
    client = client_for(operator)
    client.get(reverse("rpo_ledger"))  # the first page of a session costs a few more
    with CaptureQueriesContext(connection) as small:
        client.get(reverse("rpo_ledger"))
    Site.objects.bulk_create(
        # ids clear of the repository's sites
        Site(pk=1000 + i, tenant=tenant, domain=f"s{i}.acme.test", status=SiteStatus.ACTIVE)
        for i in range(80)
    )
    Site.objects.exclude(pk=A).update(created_at=timezone.now() - timedelta(days=1))
    services.check_rpo()
    with CaptureQueriesContext(connection) as big:
        response = client.get(reverse("rpo_ledger"))
    assert len(big.captured_queries) == len(small.captured_queries) <= 12
    assert len(response.context["rows"]) == 50 and response.context["page"].paginator.count == 81
    assert response.context["breached"] == 80, "counted over every page"
    assert {r.state for r in response.context["rows"]} == {"breached"}, "the breached first"
    second = client.get(reverse("rpo_ledger"), {"page": 2})
    assert len(second.context["rows"]) == 31


def test_the_badge_reads_the_sites_row_not_the_repository_listing(farm, owner, monkeypatch):
    services.check_rpo()
    forbidden = mock.Mock(side_effect=AssertionError("the badge ran restic"))
    monkeypatch.setattr(restic, "snapshots", forbidden)
    cache.clear()  # nothing cached to unpickle either
    url = reverse("rpo_badge", args=[farm["a"].pk])
    client = client_for(owner)
    client.get(url)  # the first page of a session costs a few more
    with CaptureQueriesContext(connection) as queries:
        body = client.get(url).content.decode()
    assert 'data-state="ok"' in body
    assert len(queries.captured_queries) <= 6


def test_forgotten_snapshots_are_no_longer_offered_as_restore_points(repo, tenant):
    make_site(tenant, "a.acme.test", pk=A)
    services.check_rpo()
    assert len(policy.site_snapshots(A)) == 2
    policy.forget_site_snapshots(A)
    assert policy.site_snapshots(A) == [], "before the next check lists the repository"
