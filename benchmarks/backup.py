"""Benchmark: back up and restore a generated site (default: 1 GB database, 20,000 uploads).

    FARM_VAR_DIR=var/bench .venv/bin/python -m benchmarks.backup [--db-mb 1024] [--files 20000]

Provisions a real site on the local farm, fills its database and uploads,
then measures in the same run:
  * the panel's backup (mariadb-dump streamed into restic with its checks and
    manifest, then the files with their manifest) against running the same
    tools by hand (mariadb-dump | restic backup --stdin; restic backup <dir>),
    each into a fresh repository;
  * the panel's restore in place (safety backup, maintenance page, database,
    files, verification) against restoring by hand (restic dump | mariadb;
    restic restore), and the measured RTO against the 1 h target.
Prints wall times, MB/s and the ratio hand/panel (target >= 0.9). Cleans up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups import restic
from backups.mariadb import mariadb_option_file
from backups.models import Backup
from benchmarks.common import prepare_farm, remove_site
from farm.runner import run_operation
from nodes import mariadb
from sites import files
from sites import services as site_services

MB = 1024 * 1024


def sql(db: str, *statements: str) -> None:
    with mariadb.connect(mariadb.admin_endpoint(), what="bench") as conn, conn.cursor() as cur:
        cur.execute(f"USE `{db}`")
        for statement in statements:
            cur.execute(statement)


def fill_database(db: str, megabytes: int) -> None:
    """Rows of ~1 KB of varied text, doubled inside MariaDB until big enough."""
    sql(
        db,
        "CREATE TABLE wp_bench (id BIGINT AUTO_INCREMENT PRIMARY KEY, body TEXT, "
        "created DATETIME) ENGINE=InnoDB",
        "INSERT INTO wp_bench (body, created) SELECT CONCAT_WS(' ', "
        + ", ".join(["MD5(RAND())"] * 30)
        + "), NOW() FROM seq_1_to_1024",
    )
    rows, row_bytes = 1024, 1000
    while rows * 2 * row_bytes <= megabytes * MB:
        sql(
            db,
            "INSERT INTO wp_bench (body, created) SELECT CONCAT(SUBSTRING(body, 2), "
            "LEFT(body, 1)), created FROM wp_bench",
        )
        rows *= 2


def fill_uploads(site_id: int, count: int) -> int:
    uploads = files.site_path(site_id) / "wp-content" / "uploads"
    total = 0
    for i in range(count):
        folder = uploads / f"{2000 + i % 26}" / f"{i % 12 + 1:02}"
        folder.mkdir(parents=True, exist_ok=True)
        data = os.urandom(512) * (1 + i % 40)  # 0.5 KB to 20 KB, partly compressible
        (folder / f"image-{i}.jpg").write_bytes(data)
        total += len(data)
    subprocess.run(["chown", "-R", "33:33", str(uploads)], check=True)
    return total


def fresh_repository(name: str) -> restic.Repository:
    path = Path(settings.VAR_DIR) / "bench-repos" / f"{name}-{uuid.uuid4().hex[:6]}"
    settings.FARM_BACKUP_REPOSITORY = str(path)
    repo = restic.repository_from_settings()
    restic.ensure_repository(repo)
    return repo


def by_hand_backup(repo: restic.Repository, db: str, directory: Path) -> tuple[float, float]:
    started = time.monotonic()
    with mariadb_option_file(mariadb.admin_endpoint()) as options:
        dump = subprocess.Popen(
            [
                "mariadb-dump",
                f"--defaults-extra-file={options}",
                "--single-transaction",
                "--quick",
                db,
            ],
            stdout=subprocess.PIPE,
        )
        backup = subprocess.run(
            restic.argv(repo, "backup", "--stdin", "--stdin-filename", "db.sql"),
            stdin=dump.stdout,
            env=restic.env(repo),
            capture_output=True,
            check=True,
        )
        assert dump.wait() == 0 and backup.returncode == 0
    db_s = time.monotonic() - started
    started = time.monotonic()
    subprocess.run(
        restic.argv(repo, "backup", str(directory)),
        env=restic.env(repo),
        capture_output=True,
        check=True,
    )
    return db_s, time.monotonic() - started


def by_hand_restore(repo: restic.Repository, db: str) -> tuple[float, float]:
    snaps = restic.snapshots(repo)
    db_snap = next(s for s in snaps if "/db.sql" in s.paths)
    files_snap = next(s for s in snaps if "/db.sql" not in s.paths)
    sql_target = f"{db}_hand"
    with mariadb.connect(mariadb.admin_endpoint(), what="bench") as conn, conn.cursor() as c:
        c.execute(f"DROP DATABASE IF EXISTS `{sql_target}`")
        c.execute(f"CREATE DATABASE `{sql_target}`")
    started = time.monotonic()
    with mariadb_option_file(mariadb.admin_endpoint()) as options:
        dump = subprocess.Popen(
            restic.argv(repo, "dump", db_snap.id, "/db.sql"),
            env=restic.env(repo),
            stdout=subprocess.PIPE,
        )
        load = subprocess.run(
            ["mariadb", f"--defaults-extra-file={options}", sql_target],
            stdin=dump.stdout,
            check=True,
        )
        assert dump.wait() == 0 and load.returncode == 0
    db_s = time.monotonic() - started
    target = Path(tempfile.mkdtemp(dir=settings.FARM_SITES_ROOT, prefix=".hand-"))
    started = time.monotonic()
    subprocess.run(
        restic.argv(repo, "restore", files_snap.id, "--target", str(target)),
        env=restic.env(repo),
        capture_output=True,
        check=True,
    )
    files_s = time.monotonic() - started
    shutil.rmtree(target)
    with mariadb.connect(mariadb.admin_endpoint(), what="bench") as conn, conn.cursor() as c:
        c.execute(f"DROP DATABASE `{sql_target}`")
    return db_s, files_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=20_000)
    args = parser.parse_args()
    tenant, actor = prepare_farm()
    created = site_services.create_site(
        tenant=tenant,
        domain=f"bk-{uuid.uuid4().hex[:6]}.localhost",
        image_choice="php8.2",
        cache_enabled=False,
        actor=actor,
    )
    site_id = created.site.pk
    try:
        assert run_operation(created.operation.pk) == "succeeded"
        site = created.site
        site.refresh_from_db()
        print(f"generating {args.db_mb} MB of database and {args.files} files…", flush=True)
        fill_database(site.db_name, args.db_mb)
        upload_bytes = fill_uploads(site.pk, args.files)
        fingerprint = mariadb.schema_fingerprint(mariadb.admin_endpoint(), site.db_name)
        db_bytes = fingerprint["wp_bench"]["rows"] * 1000
        directory = files.site_path(site.pk)

        hand_repo = fresh_repository("hand")
        hand_db, hand_files = by_hand_backup(hand_repo, site.db_name, directory)

        fresh_repository("panel")
        operation = site_services.start_site_backup(site, kinds=["db", "files"], reason="manual")
        started = time.monotonic()
        assert run_operation(operation.pk) == "succeeded", operation.error
        panel_total = time.monotonic() - started
        backups = {b.kind: b for b in Backup.objects.filter(operation=operation)}
        panel_db = (backups["db"].duration_ms or 0) / 1000
        panel_files = (backups["files"].duration_ms or 0) / 1000
        dump_bytes = backups["db"].bytes or db_bytes

        restore = site_services.start_restore(
            site=site,
            point_in_time=timezone.now(),
            scope="both",
            target="in_place",
            actor=actor,
            confirm_domain=site.domain,
        )
        assert restore.operation is not None
        run_operation(restore.operation.pk)
        restore.refresh_from_db()
        steps = {s.name: (s.duration_ms or 0) / 1000 for s in restore.operation.steps.all()}
        hand_rdb, hand_rfiles = by_hand_restore(hand_repo, site.db_name)

        def rate(nbytes: float, seconds: float) -> str:
            return f"{nbytes / MB / seconds:6.1f} MB/s" if seconds else "     -"

        print(
            f"\ndata: dump {dump_bytes / MB:.0f} MB, uploads {upload_bytes / MB:.0f} MB in "
            f"{args.files} files"
        )
        print(f"{'':26}{'panel':>10}{'by hand':>10}{'ratio':>8}   panel rate")
        for name, panel, hand, nbytes in (
            ("backup database", panel_db, hand_db, dump_bytes),
            ("backup files", panel_files, hand_files, upload_bytes),
            ("restore database", steps.get("restore_db", 0), hand_rdb, dump_bytes),
            ("restore files", steps.get("restore_files", 0), hand_rfiles, upload_bytes),
        ):
            print(
                f"{name:<26}{panel:>9.1f}s{hand:>9.1f}s{hand / panel if panel else 0:>8.2f}"
                f"   {rate(nbytes, panel)}"
            )
        print(f"backup operation wall time {panel_total:.1f} s")
        print(
            f"restore in place: status {restore.status}, verified {restore.verified}, "
            f"RTO {restore.rto_seconds:.0f} s against the 3600 s target "
            f"({', '.join(f'{k} {v:.1f}s' for k, v in steps.items())})"
        )
    finally:
        remove_site(site_id)
        shutil.rmtree(Path(settings.VAR_DIR) / "bench-repos", ignore_errors=True)


if __name__ == "__main__":
    main()
