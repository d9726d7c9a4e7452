"""A failed backup never looks like a good one: a failed Backup row, a firing Alert, and
nothing usable in the repository. The backup operation runs for real (restic,
mariadb-dump) against the host MariaDB standing in for the farm's."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backups import restic
from backups.models import Backup, BackupPolicy, BackupStatus
from farm.models import OperationStatus
from farm.runner import run_operation
from monitoring.models import Alert
from sites.models import Site
from sites.services import start_site_backup
from tests.backups.conftest import MARIADB, fill_big, fill_sample, schema_name, sql
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY, free_port

pytestmark = [pytest.mark.mariadb, pytest.mark.django_db]


@pytest.fixture
def site(settings, tenant, tmp_path, mariadb) -> Iterator[Site]:
    """A site whose database lives on the host MariaDB, and a local repository."""
    settings.FARM_MARIADB_HOST, settings.FARM_MARIADB_PORT = MARIADB.host, MARIADB.port
    settings.FARM_MARIADB_ADMIN_USER, settings.FARM_MARIADB_ADMIN_PASSWORD = "root", ""
    settings.FARM_SECRETS_DIR = tmp_path / "secrets"  # not the farm's root password
    settings.FARM_SITES_ROOT = tmp_path / "sites"
    settings.FARM_BACKUP_REPOSITORY = str(tmp_path / "repo")
    settings.FARM_RESTIC_PASSWORD = "right-password"
    name = schema_name()
    sql(mariadb, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    fill_sample(mariadb, name)
    site = Site.objects.create(
        tenant=tenant, domain="failing.example.com", status="active", db_name=name, db_user=name
    )
    BackupPolicy.objects.create(site=site)
    (tmp_path / "sites" / site.stack_name / "wp-content").mkdir(parents=True)
    (tmp_path / "sites" / site.stack_name / "wp-content" / "a.txt").write_text("a")
    yield site
    sql(mariadb, f"DROP DATABASE IF EXISTS `{name}`")


def back_up(site: Site, kinds: list[str]) -> str:
    operation = start_site_backup(site, kinds=kinds, reason="scheduled")
    run_operation(operation.pk)
    operation.refresh_from_db()
    return operation.status


def assert_failed_cleanly(site: Site, kind: str, words: str) -> Backup:
    backup = Backup.objects.get(site=site, kind=kind)
    assert backup.status == BackupStatus.FAILED
    assert words in backup.error.lower(), backup.error
    assert backup.snapshot_id == "" and not backup.is_usable
    alert = Alert.objects.get(fingerprint=f"backup-failed-site-{site.pk}", status="firing")
    assert alert.site == site and alert.severity == "critical"
    return backup


def snapshots_of(site: Site) -> list[restic.Snapshot]:
    return restic.snapshots(restic.repository_from_settings(), tags={"site": str(site.pk)})


def test_the_database_is_down(site, settings):
    settings.FARM_MARIADB_PORT = free_port()  # nothing listens there
    assert back_up(site, ["db"]) == OperationStatus.FAILED
    assert_failed_cleanly(site, "db", "can't connect")
    assert snapshots_of(site) == []
    policy = BackupPolicy.objects.get(site=site)
    assert policy.failures == 1 and policy.next_db_at is not None, "retried with back-off"


def test_the_dump_dies_mid_stream(site, mariadb):
    fill_big(mariadb, site.db_name, megabytes=40)
    stop = threading.Event()

    def kill_the_dump() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if (
                    cmdline
                    and cmdline[0].endswith(b"mariadb-dump")
                    and site.db_name.encode() in cmdline
                ):
                    time.sleep(0.3)  # let it stream a few megabytes first
                    os.kill(int(pid), signal.SIGKILL)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_dump)
    killer.start()
    try:
        assert back_up(site, ["db"]) == OperationStatus.FAILED
    finally:
        stop.set()
        killer.join()
    assert_failed_cleanly(site, "db", "mariadb-dump")
    assert snapshots_of(site) == []


def test_the_repository_is_unreachable(site, settings):
    settings.FARM_BACKUP_REPOSITORY = ""
    settings.FARM_BACKUP_S3_ENDPOINT = f"http://127.0.0.1:{free_port()}"
    settings.FARM_BACKUP_S3_BUCKET = "farm-unreachable"
    settings.FARM_BACKUP_S3_REGION = REGION
    settings.FARM_BACKUP_S3_ACCESS_KEY_ID = ACCESS_KEY
    settings.FARM_BACKUP_S3_SECRET_ACCESS_KEY = SECRET_KEY
    assert back_up(site, ["db"]) == OperationStatus.FAILED
    backup = assert_failed_cleanly(site, "db", "")
    assert backup.error


def test_the_repository_password_is_wrong(site, settings):
    assert back_up(site, ["db"]) == OperationStatus.SUCCEEDED
    good = Backup.objects.get(site=site, kind="db")
    settings.FARM_RESTIC_PASSWORD = "not-the-password"
    Alert.objects.all().delete()
    assert back_up(site, ["files"]) == OperationStatus.FAILED
    assert_failed_cleanly(site, "files", "password")
    settings.FARM_RESTIC_PASSWORD = "right-password"
    assert [s.id for s in snapshots_of(site)] == [good.snapshot_id], "only the good one"


def test_the_disk_is_full(site, settings, tmp_path, mariadb):
    fill_big(mariadb, site.db_name, megabytes=12)
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(small)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        settings.FARM_BACKUP_REPOSITORY = str(small / "repo")
        assert back_up(site, ["db"]) == OperationStatus.FAILED
        assert_failed_cleanly(site, "db", "space")
        assert snapshots_of(site) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)
