"""Backups that provably restore, on the real farm: in place, beside + switch, S3."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from backups import restic
from backups.models import Backup, BackupStatus, Restore, RestoreStatus
from farm.models import Operation, Tenant, User
from farm.operations import roll_back_operation
from farm.runner import run_operation
from nodes import mariadb
from nodes.inventory import sync_nodes
from sites import files
from sites import services as site_services
from sites.models import Site, SiteStatus
from tests.backups.conftest import checksum_tables
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY, moto_server
from tests.support.farm import ensure_farm
from tests.support.sites import remove_test_site

pytestmark = [pytest.mark.swarm, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ADMIN_PASSWORD = "Adm1n-pass-for-tests!"


@pytest.fixture
def repo_dir(settings, tmp_path) -> Path:
    settings.FARM_BACKUP_REPOSITORY = str(tmp_path / "repo")
    settings.FARM_RESTIC_PASSWORD = "test-repo-password"
    return tmp_path / "repo"


@pytest.fixture
def made() -> Iterator[list[int]]:
    site_ids: list[int] = []
    yield site_ids
    previews = Restore.objects.filter(site_id__in=site_ids, preview_site__isnull=False)
    site_ids += [p for p in previews.values_list("preview_site_id", flat=True) if p]
    for site_id in site_ids:
        remove_test_site(site_id)


@pytest.fixture
def site(made) -> tuple[Site, User]:
    ensure_farm()
    sync_nodes()
    tenant = Tenant.objects.create(
        name="Restore Co", slug=f"rc-{uuid.uuid4().hex[:6]}", site_quota=10
    )
    operator = User.objects.create_user("restore@farm.test", "pw-restore-123", is_staff=True)
    created = site_services.create_site(
        tenant=tenant,
        domain=f"rt-{uuid.uuid4().hex[:6]}.localhost",
        image_choice="php8.2",
        cache_enabled=True,
        actor=operator,
    )
    made.append(created.site.pk)
    assert run_operation(created.operation.pk) == "succeeded"
    site = Site.objects.get(pk=created.site.pk)
    install_wordpress(site)
    return site, operator


def get(site: Site, path: str = "/") -> requests.Response:
    return requests.get(
        f"{settings.FARM_EDGE_URL}{path}",
        headers={"Host": site.domain},
        timeout=30,
        allow_redirects=False,
    )


def install_wordpress(site: Site) -> None:
    response = requests.post(
        f"{settings.FARM_EDGE_URL}/wp-admin/install.php?step=2",
        headers={"Host": site.domain},
        data={
            "weblog_title": "Restore test",
            "user_name": "admin",
            "admin_password": ADMIN_PASSWORD,
            "admin_password2": ADMIN_PASSWORD,
            "pw_weak": "1",
            "admin_email": "admin@restore.test",
            "blog_public": "0",
        },
        timeout=120,
    )
    assert response.status_code == 200 and "Success!" in response.text, response.text[:500]


def sql(site: Site, statement: str, params: tuple = ()) -> None:
    with mariadb.connect(mariadb.admin_endpoint(), what="test") as conn, conn.cursor() as cur:
        cur.execute(f"USE `{site.db_name}`")
        cur.execute(statement, params)


def add_post(site: Site, title: str) -> None:
    now = timezone.now().strftime("%Y-%m-%d %H:%M:%S")
    sql(
        site,
        "INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_content, "
        "post_title, post_excerpt, post_status, post_name, to_ping, pinged, post_modified, "
        "post_modified_gmt, post_content_filtered, guid, post_type) VALUES "
        "(1, %s, %s, %s, %s, '', 'publish', %s, '', '', %s, %s, '', '', 'post')",
        (now, now, f"Body of {title}", title, title.lower().replace(" ", "-"), now, now),
    )


def add_upload(site: Site, name: str, content: bytes) -> Path:
    path = files.site_path(site.pk) / "wp-content" / "uploads" / "2026" / "11" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def state_of(site: Site) -> tuple[dict, dict]:
    """CHECKSUM TABLE of every table (MariaDB's own, not the manifest's fingerprint);
    sha256 of every file."""
    tables = checksum_tables(mariadb.admin_endpoint(), site.db_name)
    root = files.site_path(site.pk)
    hashes = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    return tables, hashes


def back_up(site: Site, operator: User) -> None:
    operation = site_services.back_up_now(site=site, actor=operator)
    assert run_operation(operation.pk) == "succeeded", Operation.objects.get(pk=operation.pk).error


def vandalise(site: Site) -> None:
    add_post(site, "Written after the backup")
    sql(site, "DELETE FROM wp_posts WHERE post_title = 'Hello world!'")
    sql(site, "UPDATE wp_options SET option_value = 'Defaced' WHERE option_name = 'blogname'")
    uploads = files.site_path(site.pk) / "wp-content" / "uploads" / "2026" / "11"
    (uploads / "photo.jpg").unlink()
    (uploads / "notes.txt").write_text("changed")
    (uploads / "intruder.php").write_text("<?php echo 'x';")


def restore(site: Site, operator: User, target: str) -> Restore:
    """Restore the state of the manual backup (safety backups taken later are newer)."""
    at = Backup.objects.filter(site=site, reason="manual").latest("finished_at").finished_at
    started = site_services.start_restore(
        site=site,
        point_in_time=at,
        scope="both",
        target=target,
        actor=operator,
        confirm_domain=site.domain,
    )
    assert started.operation is not None
    run_operation(started.operation.pk)
    started.refresh_from_db()
    return started


def warm_up(site: Site) -> None:
    """First page views store transients; after that a view writes nothing (WordPress's
    page-view cron is off), so the state below is the one the backup takes."""
    for _ in range(3):
        get(site)
        get(site, "/?p=1")


def prepare(site: Site, operator: User) -> tuple[dict, dict]:
    add_post(site, "First post of the test")
    add_post(site, "Second post, with ünïcödé")
    add_upload(site, "photo.jpg", bytes(range(256)) * 4096)
    add_upload(site, "notes.txt", b"original notes\n")
    warm_up(site)
    before = state_of(site)
    back_up(site, operator)
    return before


def test_round_trip_in_place_then_beside_and_switch(repo_dir, site):
    site, operator = site
    before = prepare(site, operator)
    manual = Backup.objects.filter(site=site, reason="manual", status=BackupStatus.SUCCEEDED)
    assert sorted(manual.values_list("kind", flat=True)) == ["config", "db", "files"]
    assert Backup.objects.filter(site=site, reason="config-change").exists(), "config on change"

    vandalise(site)
    assert state_of(site) != before
    in_place = restore(site, operator, "in_place")
    assert in_place.status == RestoreStatus.SUCCEEDED, in_place.error
    assert in_place.verified and in_place.rto_seconds is not None
    assert in_place.rto_seconds < 3600
    assert in_place.safety_db_backup is not None
    assert in_place.safety_db_backup.status == BackupStatus.SUCCEEDED
    tables, hashes = state_of(site)
    assert tables == before[0], "every table: same rows, same CHECKSUM TABLE"
    assert hashes == before[1], "every file: same sha256, nothing extra"
    site.refresh_from_db()
    assert site.status == SiteStatus.ACTIVE and not site.maintenance
    assert get(site).status_code == 200
    assert "Restore test" in get(site).text

    # Beside, then switch the domain over to the preview.
    vandalise(site)
    beside = restore(site, operator, "beside")
    assert beside.status == RestoreStatus.SUCCEEDED, beside.error
    preview = beside.preview_site
    assert preview is not None and preview.domain.startswith(f"restore-{site.pk}-")
    assert state_of(preview)[0] == before[0]
    assert state_of(preview)[1] == before[1]
    assert get(preview).status_code == 200
    assert "Defaced" in get(site).text, "the site itself was left alone"

    switch = site_services.switch_to_preview(restore=beside, actor=operator)
    assert run_operation(switch.pk) == "succeeded", Operation.objects.get(pk=switch.pk).error
    beside.refresh_from_db()
    assert beside.status == RestoreStatus.SWITCHED
    original_domain = site.domain
    site.refresh_from_db()
    preview.refresh_from_db()
    assert preview.domain == original_domain and site.domain.startswith("restore-")
    live = requests.get(f"{settings.FARM_EDGE_URL}/", headers={"Host": original_domain}, timeout=30)
    assert "Restore test" in live.text and "Defaced" not in live.text


def test_round_trip_against_s3(settings, site):
    site, operator = site
    with moto_server() as endpoint:
        settings.FARM_BACKUP_REPOSITORY = ""
        settings.FARM_BACKUP_S3_ENDPOINT = endpoint
        settings.FARM_BACKUP_S3_BUCKET = f"farm-{uuid.uuid4().hex[:8]}"
        settings.FARM_BACKUP_S3_REGION = REGION
        settings.FARM_BACKUP_S3_ACCESS_KEY_ID = ACCESS_KEY
        settings.FARM_BACKUP_S3_SECRET_ACCESS_KEY = SECRET_KEY
        settings.FARM_RESTIC_PASSWORD = "s3-repo-password"
        repo = restic.repository_from_settings()
        assert repo.url.startswith("s3:")
        before = prepare(site, operator)
        kinds = sorted(s.tags["kind"] for s in restic.snapshots(repo, tags={"site": str(site.pk)}))
        assert kinds == ["config", "db", "files"]
        vandalise(site)
        done = restore(site, operator, "in_place")
        assert done.status == RestoreStatus.SUCCEEDED, done.error
        assert state_of(site) == before


def test_a_restore_that_fails_verification_is_failed_and_the_safety_backup_restores(repo_dir, site):
    site, operator = site
    prepare(site, operator)
    vandalise(site)
    vandalised = state_of(site)
    # The manifest taken at backup time no longer matches what the snapshot holds.
    backup = Backup.objects.get(site=site, kind="db", reason="manual")
    backup.manifest["tables"]["wp_posts"]["rows"] += 1
    backup.save()

    failed = restore(site, operator, "in_place")
    assert failed.status == RestoreStatus.FAILED
    assert not failed.verified and "wp_posts" in failed.verification["database"]["mismatched"]
    assert "does not match its backup" in failed.error
    site.refresh_from_db()
    assert site.status == SiteStatus.FAILED

    # Roll back: the safety backup taken just before goes back in place.
    operation = failed.operation
    assert operation is not None
    roll_back_operation(operation)
    assert run_operation(operation.pk) == "rolled_back", Operation.objects.get(
        pk=operation.pk
    ).error
    assert state_of(site) == vandalised, "exactly the state before the restore"
    site.refresh_from_db()
    assert site.status == SiteStatus.ACTIVE and not site.maintenance


def test_a_drill_restores_beside_verifies_measures_and_removes_the_preview(repo_dir, site):
    from backups.models import BackupKind

    site, operator = site
    prepare(site, operator)
    started = site_services.run_drills(1)
    assert len(started) == 1
    drill = Restore.objects.get(pk=started[0])
    assert drill.is_drill and drill.target == "beside"
    assert drill.operation is not None
    assert run_operation(drill.operation.pk) == "succeeded", Operation.objects.get(
        pk=drill.operation.pk
    ).error
    drill.refresh_from_db()
    assert drill.status == RestoreStatus.DISCARDED and drill.verified
    assert drill.rto_seconds is not None and 0 < drill.rto_seconds < 3600
    preview = drill.preview_site
    assert preview is not None and preview.status == SiteStatus.DELETED
    assert not mariadb.database_exists(preview.db_name)
    assert not files.site_path(preview.pk).exists()
    assert Backup.objects.filter(site=site, kind=BackupKind.DB).exists()
