"""Backup pages: the list and its filters, a backup, a restore with its live RTO clock, the
switch to a verified preview, the drills chart, the repository page, and the rotating
repository check.

Rows are made directly (no restic, no Swarm) except for the repository check, which runs
`restic check` on a small local repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from backups import restic, tasks
from backups.models import (
    Backup,
    BackupKind,
    BackupStatus,
    RepositoryCheck,
    Restore,
    RestoreScope,
    RestoreStatus,
    RestoreTarget,
)
from farm.models import Operation, OperationStatus
from monitoring.models import Alert, AlertStatus
from sites import services
from sites.models import Site, SiteStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _no_cached_listing() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def site(tenant) -> Site:
    return Site.objects.create(tenant=tenant, domain="shop.acme.test", status=SiteStatus.ACTIVE)


def make_backup(site: Site | None, kind: str, status: str = BackupStatus.SUCCEEDED) -> Backup:
    return Backup.objects.create(site=site, kind=kind, status=status, snapshot_id="ab" * 32)


def make_restore(
    site: Site,
    *,
    operation_status: str | None = OperationStatus.RUNNING,
    **fields,
) -> Restore:
    restore = Restore.objects.create(
        site=site,
        scope=fields.pop("scope", RestoreScope.BOTH),
        target=fields.pop("target", RestoreTarget.BESIDE),
        point_in_time=timezone.now() - timedelta(hours=2),
        **fields,
    )
    if operation_status is not None:
        restore.operation = Operation.objects.create(
            kind="restore.site",
            target_type="restore",
            target_id=str(restore.pk),
            tenant=site.tenant,
            status=operation_status,
        )
        restore.save(update_fields=["operation"])
    return restore


def error_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


# -- the list -----------------------------------------------------------------------------


@pytest.fixture
def backups(site, tenant) -> dict[str, Backup]:
    blog = Site.objects.create(tenant=tenant, domain="blog.acme.test", status=SiteStatus.ACTIVE)
    return {
        "shop_db": make_backup(site, BackupKind.DB),
        "shop_files_failed": make_backup(site, BackupKind.FILES, BackupStatus.FAILED),
        "blog_db": make_backup(blog, BackupKind.DB),
        "cluster": make_backup(None, BackupKind.CLUSTER),
    }


def listed(client, **params) -> set[int]:
    response = client.get(reverse("backup_list"), params)
    assert response.status_code == 200
    return {b.pk for b in response.context["page"].object_list}


def test_the_list_filters_by_kind_status_and_site(owner, backups, site):
    client = client_for(owner)
    ids = {name: b.pk for name, b in backups.items()}
    assert listed(client) == {ids["shop_db"], ids["shop_files_failed"], ids["blog_db"]}
    assert listed(client, kind="db") == {ids["shop_db"], ids["blog_db"]}
    assert listed(client, status="failed") == {ids["shop_files_failed"]}
    assert listed(client, site=site.pk) == {ids["shop_db"], ids["shop_files_failed"]}
    assert listed(client, site=site.pk, kind="db") == {ids["shop_db"]}
    assert listed(client, site="nonsense") == listed(client), "a bad filter is ignored"


def test_the_site_filter_survives_the_filter_form(owner, backups, site):
    body = client_for(owner).get(reverse("backup_list"), {"site": site.pk}).content.decode()
    assert f'<input type="hidden" name="site" value="{site.pk}">' in body


def test_cluster_backups_are_for_operators_and_other_tenants_see_nothing(
    operator, outsider, backups
):
    assert backups["cluster"].pk in listed(client_for(operator))
    assert listed(client_for(outsider)) == set()


def test_the_list_is_read_only(owner):
    assert client_for(owner).post(reverse("backup_list")).status_code == 405


# -- one backup ---------------------------------------------------------------------------


def test_a_backup_page_shows_it(owner, backups):
    backup = backups["shop_db"]
    response = client_for(owner).get(reverse("backup_detail", args=[backup.pk]))
    assert response.status_code == 200
    assert backup.snapshot_id in response.content.decode()


def test_a_backup_of_another_tenant_or_of_the_cluster_is_404(outsider, owner, backups):
    url = reverse("backup_detail", args=[backups["shop_db"].pk])
    assert client_for(outsider).get(url).status_code == 404
    cluster = reverse("backup_detail", args=[backups["cluster"].pk])
    assert client_for(owner).get(cluster).status_code == 404


def test_a_backup_page_is_read_only(owner, backups):
    url = reverse("backup_detail", args=[backups["shop_db"].pk])
    assert client_for(owner).post(url).status_code == 405


# -- a restore ----------------------------------------------------------------------------


def live(client, restore: Restore):
    return client.get(
        reverse("restore_detail", args=[restore.pk]),
        headers={**HTMX, "HX-Target": f"restore-{restore.pk}"},
    )


def test_a_running_restore_polls_and_a_finished_one_stops(owner, site):
    restore = make_restore(site)
    client = client_for(owner)
    page = client.get(reverse("restore_detail", args=[restore.pk]))
    assert page.status_code == 200 and "<html" in page.content.decode()
    running = live(client, restore)
    assert running.status_code == 200
    body = running.content.decode()
    assert "<html" not in body and 'hx-trigger="every 1s"' in body

    assert restore.operation is not None
    Operation.objects.filter(pk=restore.operation.pk).update(status=OperationStatus.SUCCEEDED)
    Restore.objects.filter(pk=restore.pk).update(status=RestoreStatus.SUCCEEDED, rto_seconds=754.2)
    finished = live(client, restore)
    assert finished.status_code == 286, "htmx stops polling"
    body = finished.content.decode()
    assert "hx-trigger" not in body and "754 s" in body


def test_a_restore_without_an_operation_does_not_poll(owner, site):
    restore = make_restore(site, operation_status=None)
    assert live(client_for(owner), restore).status_code == 286


def test_a_restore_of_another_tenant_is_404(outsider, site):
    restore = make_restore(site)
    client = client_for(outsider)
    assert client.get(reverse("restore_detail", args=[restore.pk])).status_code == 404
    assert client.post(reverse("restore_switch", args=[restore.pk])).status_code == 404


def test_a_restore_page_is_read_only(owner, site):
    restore = make_restore(site)
    assert client_for(owner).post(reverse("restore_detail", args=[restore.pk])).status_code == 405


# -- switching to the preview ------------------------------------------------------------------


@pytest.fixture
def verified_beside(site) -> Restore:
    preview = Site.objects.create(
        tenant=site.tenant, domain="restore-1-x.preview.test", status=SiteStatus.ACTIVE
    )
    return make_restore(
        site,
        operation_status=OperationStatus.SUCCEEDED,
        status=RestoreStatus.SUCCEEDED,
        preview_site=preview,
        verified=True,
    )


def test_switching_to_a_verified_preview_starts_the_switch(owner, verified_beside):
    url = reverse("restore_switch", args=[verified_beside.pk])
    response = client_for(owner).post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("restore_detail", args=[verified_beside.pk])
    switch = Operation.objects.get(kind="restore.switch")
    assert switch.lock_key == f"site:{verified_beside.site_id}"
    page = client_for(owner).get(reverse("restore_detail", args=[verified_beside.pk]))
    assert "to the preview</button>" in page.content.decode()


@pytest.mark.parametrize(
    "change",
    [
        {"target": RestoreTarget.IN_PLACE},
        {"status": RestoreStatus.RUNNING},
        {"status": RestoreStatus.FAILED},
        {"is_drill": True},
        {"preview_site": None},
    ],
    ids=["in-place", "running", "failed", "drill", "no-preview"],
)
def test_switching_is_refused_unless_the_restore_is_a_verified_beside_one(
    owner, verified_beside, change
):
    Restore.objects.filter(pk=verified_beside.pk).update(**change)
    url = reverse("restore_switch", args=[verified_beside.pk])
    response = client_for(owner).post(url)
    assert response.status_code == 302
    assert error_messages(response) == ["Only a verified restore beside can be switched to."]
    assert not Operation.objects.filter(kind="restore.switch").exists()
    page = client_for(owner).get(reverse("restore_detail", args=[verified_beside.pk]))
    assert "to the preview</button>" not in page.content.decode()


def test_members_may_not_switch_and_get_is_not_allowed(member, owner, verified_beside):
    url = reverse("restore_switch", args=[verified_beside.pk])
    assert client_for(member).post(url).status_code == 403
    assert client_for(owner).get(url).status_code == 405
    assert not Operation.objects.filter(kind="restore.switch").exists()


# -- drills -------------------------------------------------------------------------------


def test_the_drills_chart_colours_each_bar_by_the_one_hour_target(owner, site):
    make_restore(site, is_drill=True, status=RestoreStatus.DISCARDED, rto_seconds=600)
    make_restore(site, is_drill=True, status=RestoreStatus.DISCARDED, rto_seconds=4000)
    make_restore(site, is_drill=True)  # still running: no bar yet
    make_restore(site, rto_seconds=30)  # not a drill
    response = client_for(owner).get(reverse("restore_drills"))
    assert response.status_code == 200
    assert len(response.context["restores"]) == 3
    body = response.content.decode()
    assert "<svg" in body and "target 60 min" in body
    assert body.count('class="bar ok"') == 1 and body.count('class="bar bad"') == 1
    assert "shop.acme.test · 10.0 min" in body and "shop.acme.test · 66.7 min" in body


def test_other_tenants_drills_are_not_shown(outsider, site):
    make_restore(site, is_drill=True, rto_seconds=600)
    response = client_for(outsider).get(reverse("restore_drills"))
    assert response.context["restores"] == []
    assert "No drill has finished yet." in response.content.decode()


def test_the_drills_page_is_read_only(owner):
    assert client_for(owner).post(reverse("restore_drills")).status_code == 405


# -- the repository -----------------------------------------------------------------------


def test_the_repository_page_is_for_operators(owner, operator):
    RepositoryCheck.objects.create(read_data_subset="7/30", ok=True, finished_at=timezone.now())
    make_backup(None, BackupKind.CLUSTER)
    assert client_for(owner).get(reverse("backup_repository")).status_code == 403
    response = client_for(operator).get(reverse("backup_repository"))
    assert response.status_code == 200
    assert "7/30" in response.content.decode()
    assert len(response.context["cluster_backups"]) == 1
    assert client_for(operator).post(reverse("backup_repository")).status_code == 405


def test_thirty_consecutive_days_read_the_whole_repository():
    for first in (date(2025, 1, 1), date(2024, 2, 15), date(2031, 12, 20)):
        days = [first + timedelta(days=n) for n in range(30)]
        subsets = [tasks.subset_for(day) for day in days]
        assert sorted(subsets) == sorted(f"{n}/30" for n in range(1, 31))
        assert tasks.subset_for(first + timedelta(days=30)) == subsets[0]


@pytest.fixture
def repo(settings, tmp_path: Path) -> restic.Repository:
    settings.FARM_BACKUP_REPOSITORY = str(tmp_path / "repo")
    settings.FARM_RESTIC_PASSWORD = "only for tests"
    settings.FARM_RESTIC_CACHE_DIR = str(tmp_path / "restic-cache")
    repository = restic.repository_from_settings()
    restic.ensure_repository(repository)
    return repository


def back_up(repo: restic.Repository, site_id: int, kind: str, tmp_path: Path) -> None:
    source = tmp_path / f"{site_id}-{kind}"
    source.write_text(f"{kind} of {site_id}")
    when = timezone.now() - timedelta(minutes=10)
    restic.backup_paths(repo, [source], tags={"site": str(site_id), "kind": kind}, time=when)


def test_the_daily_check_reads_its_subset_and_records_it(repo, tmp_path: Path):
    back_up(repo, 1, "db", tmp_path)

    assert tasks.check_repository() == f"subset {tasks.subset_for(timezone.now().date())}: ok"
    check = RepositoryCheck.objects.get()
    assert check.ok and check.finished_at and check.seconds is not None


def test_a_check_that_cannot_reach_the_repository_fails_visibly(repo, settings):
    settings.FARM_RESTIC_PASSWORD = "not the password"  # (a missing one: nothing to check yet)

    assert tasks.check_repository().endswith(": FAILED")
    check = RepositoryCheck.objects.get()
    assert not check.ok and check.finished_at is not None, "not left 'running' for ever"
    assert check.output
    alert = Alert.objects.get(fingerprint="restic-check-failed")
    assert alert.status == AlertStatus.FIRING and alert.source == "backup"


def test_drills_restore_a_sample_of_active_sites_beside(
    repo, site, tenant, worker_node, tmp_path: Path
):
    back_up(repo, site.pk, "db", tmp_path)
    back_up(repo, site.pk, "files", tmp_path)
    Site.objects.create(tenant=tenant, domain="empty.acme.test", status=SiteStatus.ACTIVE)
    preview = Site.objects.create(
        tenant=tenant, domain="restore-1-x.preview.test", status=SiteStatus.ACTIVE
    )
    back_up(repo, preview.pk, "db", tmp_path)
    back_up(repo, preview.pk, "files", tmp_path)

    started = services.run_drills(10)

    drill = Restore.objects.get()
    assert started == [drill.pk], "the site without snapshots is skipped, previews never drilled"
    assert drill.site == site and drill.is_drill and drill.requested_by is None
    assert drill.target == RestoreTarget.BESIDE and drill.scope == RestoreScope.BOTH
    assert drill.operation is not None and drill.operation.kind == "restore.drill"
