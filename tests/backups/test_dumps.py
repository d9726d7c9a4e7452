"""Database backups: a restore holds exactly what the manifest says, and a failure keeps nothing."""

# ruff: noqa: S608  (schema names are generated here, not taken from input)
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backups import restic
from backups.mariadb import (
    DumpFailed,
    RestoreFailed,
    SiteDbDump,
    consistent_db_backup,
    dump_completed,
    restore_db,
)
from backups.restic import ProducerFailed, ResticError, SubprocessProducer
from farm.errors import FarmError
from nodes.mariadb import DatabaseError, Endpoint, connect, schema_fingerprint
from tests.backups.conftest import (
    checksum_tables,
    fill_big,
    new_local_repository,
    s3_repository,
    sql,
)
from tests.fakes.s3 import TcpRelay, free_port

pytestmark = [pytest.mark.mariadb, pytest.mark.external]

TAGS = {"site": "9", "kind": "db"}


def assert_writable(endpoint: Endpoint, database: str) -> None:
    """No global read lock was left behind: a write goes through at once."""
    sql(
        endpoint,
        "SET SESSION lock_wait_timeout=2",
        f"CREATE TABLE IF NOT EXISTS `{database}`.probe (id INT)",
        f"INSERT INTO `{database}`.probe VALUES (1)",
        f"DROP TABLE `{database}`.probe",
    )


# -- round trips ------------------------------------------------------------------


def test_a_restored_database_matches_the_manifest_and_checksum_table(
    mariadb, sample_schema, schemas, repo
):
    summary, manifest = consistent_db_backup(
        mariadb, sample_schema, repo, tags=TAGS, filename=f"{sample_schema}.sql"
    )

    [snapshot] = restic.snapshots(repo, tags=TAGS)
    assert snapshot.id == summary.snapshot_id
    assert snapshot.tags["site"] == "9" and snapshot.tags["kind"] == "db"
    assert snapshot.paths == [f"/{sample_schema}.sql"]
    assert summary.total_bytes > 0 and summary.files == 1
    assert set(manifest) == {"wp_posts", "wp_media", "wp_log", "wp_counts"}
    assert manifest["wp_posts"]["rows"] == 4 and manifest["wp_counts"]["rows"] == 1

    restored = schemas(create=False)
    restore_db(repo, summary.snapshot_id, f"{sample_schema}.sql", mariadb, restored)

    assert schema_fingerprint(mariadb, restored) == manifest
    assert checksum_tables(mariadb, restored) == checksum_tables(mariadb, sample_schema)
    # The view, trigger and procedure came along, and work under the new name.
    assert sql(mariadb, f"SELECT COUNT(*) FROM `{restored}`.titles") == [(4,)]
    sql(mariadb, f"INSERT INTO `{restored}`.wp_posts (post_title) VALUES ('after')")
    assert sql(mariadb, f"SELECT n FROM `{restored}`.wp_counts") == [(5,)]
    assert sql(mariadb, f"CALL `{restored}`.post_count()") == [(5,)]


def test_the_manifest_notices_a_changed_value(mariadb, sample_schema):
    before = schema_fingerprint(mariadb, sample_schema)
    sql(mariadb, f"UPDATE `{sample_schema}`.wp_media SET data = '' WHERE id = 3")  # NULL -> ''

    after = schema_fingerprint(mariadb, sample_schema)

    assert after["wp_media"]["rows"] == before["wp_media"]["rows"]
    assert after["wp_media"]["crc"] != before["wp_media"]["crc"]
    assert after["wp_posts"] == before["wp_posts"]


def test_a_backup_taken_while_the_site_writes_restores_exactly_its_manifest(
    mariadb, schemas, local_repo
):
    """Orders and their items are written in one transaction each, all through the backup."""
    database = schemas()
    db = f"`{database}`"
    sql(
        mariadb,
        f"CREATE TABLE {db}.orders (id INT PRIMARY KEY AUTO_INCREMENT, total INT) ENGINE=InnoDB",
        f"CREATE TABLE {db}.items (order_id INT, amount INT) ENGINE=InnoDB",
    )
    fill_big(mariadb, database, megabytes=12)  # so that the dump takes a while
    stop = threading.Event()
    written: list[float] = []  # seconds each write transaction took

    def write_orders() -> None:
        with connect(mariadb, what="writer") as conn, conn.cursor() as cur:
            while not stop.is_set():
                started = time.monotonic()
                cur.execute("BEGIN")
                cur.execute(f"INSERT INTO {db}.orders (total) VALUES (%s)", (len(written),))
                cur.execute(f"INSERT INTO {db}.items VALUES (LAST_INSERT_ID(), %s)", (7,))
                cur.execute("COMMIT")
                written.append(time.monotonic() - started)

    writer = threading.Thread(target=write_orders)
    writer.start()
    try:
        while len(written) < 50:
            time.sleep(0.01)
        during_start = len(written)
        summary, manifest = consistent_db_backup(
            mariadb, database, local_repo, tags=TAGS, filename="orders.sql"
        )
        during_end = len(written)
    finally:
        stop.set()
        writer.join()

    assert during_end > during_start, "the writer should have kept writing during the backup"
    assert manifest["orders"]["rows"] == manifest["items"]["rows"] >= during_start
    assert max(written) < 3, "writes may wait for the global read lock only briefly"
    restored = schemas(create=False)
    restore_db(local_repo, summary.snapshot_id, "orders.sql", mariadb, restored)
    assert schema_fingerprint(mariadb, restored) == manifest
    orphans = sql(
        mariadb,
        f"SELECT COUNT(*) FROM `{restored}`.orders o LEFT JOIN `{restored}`.items i "
        "ON i.order_id = o.id WHERE i.order_id IS NULL",
    )
    assert orphans == [(0,)]


def test_a_site_user_with_an_awkward_password_can_dump_its_schema(mariadb, schemas, local_repo):
    database = schemas()
    sql(mariadb, f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY)")
    password = "pa\"ss\\wo#rd 'x' ;$HOME"
    sql(mariadb, f"CREATE USER '{database}'@'%%' IDENTIFIED BY %s", params=(password,))
    sql(mariadb, f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{database}'@'%'")
    try:
        site_user = Endpoint(mariadb.host, mariadb.port, database, password)
        summary = restic.backup_stream(
            local_repo, SiteDbDump(site_user, database), filename="db.sql", tags=TAGS
        )
        assert summary.snapshot_id
    finally:
        sql(mariadb, f"DROP USER '{database}'@'%'")


def test_credentials_reach_mariadb_dump_in_a_private_file_removed_afterwards(
    mariadb, sample_schema, local_repo
):
    producer = SiteDbDump(mariadb, sample_schema)
    seen: dict[str, object] = {}

    def look_at_the_running_dump(chunk: bytes) -> None:
        if chunk and "argv" not in seen:
            argv = Path(f"/proc/{producer.pid}/cmdline").read_bytes().split(b"\0")
            options = Path(argv[1].decode().removeprefix("--defaults-extra-file="))
            seen.update(argv=argv, options=options, mode=options.stat().st_mode & 0o777)

    restic.backup_stream(
        local_repo, producer, filename="db.sql", tags=TAGS, on_data=look_at_the_running_dump
    )

    argv = seen["argv"]
    assert isinstance(argv, list) and argv[1].startswith(b"--defaults-extra-file=")
    assert b"--databases" not in argv and not any(a.startswith(b"--password") for a in argv)
    assert seen["mode"] == 0o600
    options = seen["options"]
    assert isinstance(options, Path) and not options.exists() and not options.parent.exists()


# -- failures: an error people can read, and no snapshot ------------------------------


def test_a_dump_killed_mid_stream_leaves_no_snapshot(mariadb, big_schema, local_repo):
    producer = SiteDbDump(mariadb, big_schema)
    seen = 0

    def kill_after_a_few_megabytes(chunk: bytes) -> None:
        nonlocal seen
        seen += len(chunk)
        if seen > 2 << 20 and producer.process.poll() is None:
            os.kill(producer.pid, signal.SIGKILL)

    with pytest.raises(DumpFailed) as caught:
        restic.backup_stream(
            local_repo, producer, filename="db.sql", tags=TAGS, on_data=kill_after_a_few_megabytes
        )

    assert "exited with status -9" in caught.value.message
    assert "no snapshot" in caught.value.message
    assert restic.snapshots(local_repo) == []


def test_a_stream_cut_short_with_exit_status_0_leaves_no_snapshot(local_repo, tmp_path):
    whole = b"CREATE TABLE t (id INT);\n" * 1000 + b"-- Dump completed on 2024-01-01\n"
    (tmp_path / "dump.sql").write_bytes(whole)

    class CutDump(SubprocessProducer):
        def check_complete(self, tail: bytes) -> str | None:
            return dump_completed(tail)

    producer = CutDump(["head", "-c", "10000", str(tmp_path / "dump.sql")], description="cut")
    with pytest.raises(ProducerFailed, match="cut short"):
        restic.backup_stream(local_repo, producer, filename="db.sql", tags=TAGS)

    assert restic.snapshots(local_repo) == []
    assert dump_completed(whole) is None


def test_a_database_that_is_down_fails_retryably_without_a_snapshot(local_repo, schemas):
    down = Endpoint("127.0.0.1", free_port(), "root", "")

    with pytest.raises(DatabaseError) as caught:
        consistent_db_backup(down, "wp_9000001", local_repo, tags=TAGS, filename="db.sql")
    assert caught.value.retryable and "Can't connect" in caught.value.message

    # mariadb-dump on its own, as a producer, fails the same way.
    with pytest.raises(DumpFailed) as dumped:
        restic.backup_stream(
            local_repo, SiteDbDump(down, "wp_9000001"), filename="db.sql", tags=TAGS
        )
    assert dumped.value.retryable and "Can't connect" in dumped.value.message
    assert restic.snapshots(local_repo) == []


def test_an_unreachable_repository_is_a_retryable_error_and_keeps_nothing(
    mariadb, sample_schema, moto, tmp_path
):
    host, port = moto.removeprefix("http://").split(":")
    relay = TcpRelay(host, int(port))
    relay.restore()
    repo = s3_repository(f"http://127.0.0.1:{relay.port}", "farm-unreachable", tmp_path)
    restic.ensure_repository(repo)
    relay.cut()
    try:
        with pytest.raises(ResticError) as caught:
            consistent_db_backup(mariadb, sample_schema, repo, tags=TAGS, filename="db.sql")
    finally:
        relay.restore()

    assert caught.value.kind == "unreachable" and caught.value.retryable
    assert "cannot be reached" in caught.value.message and "connection refused" in str(caught.value)
    assert restic.snapshots(repo) == []
    assert_writable(mariadb, sample_schema)
    relay.cut()


def test_a_wrong_repository_password_is_not_retryable(mariadb, sample_schema, local_repo):
    wrong = restic.Repository(local_repo.url, "not-the-password", {}, local_repo.cache_dir)

    with pytest.raises(ResticError) as caught:
        consistent_db_backup(mariadb, sample_schema, wrong, tags=TAGS, filename="db.sql")

    assert caught.value.kind == "wrong_password" and not caught.value.retryable
    assert "wrong password" in caught.value.message
    assert restic.snapshots(local_repo) == []
    assert_writable(mariadb, sample_schema)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a 4 MB tmpfs here: {exc}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_fails_with_no_space_and_the_repository_still_opens(
    mariadb, big_schema, tiny_disk
):
    repo = new_local_repository(tiny_disk)
    restic.ensure_repository(repo)

    with pytest.raises(ResticError) as caught:
        consistent_db_backup(mariadb, big_schema, repo, tags=TAGS, filename="db.sql")

    assert caught.value.kind == "no_space" and not caught.value.retryable
    assert "no space left on device" in caught.value.message
    assert restic.snapshots(repo) == []
    assert_writable(mariadb, big_schema)


def test_a_lock_that_cannot_be_had_quickly_fails_retryably(
    mariadb, sample_schema, local_repo, settings
):
    """A long write elsewhere makes FLUSH TABLES WITH READ LOCK wait: give up, retry later."""
    settings.FARM_BACKUP_LOCK_WAIT_TIMEOUT = 1
    long_write = f"UPDATE `{sample_schema}`.wp_counts SET n = n + SLEEP(4)"
    long_query = threading.Thread(target=sql, args=(mariadb, long_write))
    long_query.start()
    time.sleep(0.5)
    try:
        with pytest.raises(DatabaseError) as caught:
            consistent_db_backup(mariadb, sample_schema, local_repo, tags=TAGS, filename="db.sql")
    finally:
        long_query.join()
    assert caught.value.retryable and "Lock wait timeout" in caught.value.message
    assert restic.snapshots(local_repo) == []


def test_a_dump_that_does_not_open_its_snapshot_in_time_is_abandoned(
    mariadb, sample_schema, local_repo, settings
):
    settings.FARM_BACKUP_MAX_LOCK_SECONDS = 0.001

    with pytest.raises(DumpFailed, match="had not opened its snapshot") as caught:
        consistent_db_backup(mariadb, sample_schema, local_repo, tags=TAGS, filename="db.sql")

    assert caught.value.retryable
    assert restic.snapshots(local_repo) == []
    assert_writable(mariadb, sample_schema)


def test_a_backup_whose_manifest_fails_is_not_kept(mariadb, sample_schema, local_repo, monkeypatch):
    def fail_after_the_dump_is_stored(cur, database):
        time.sleep(3)  # the small dump is in the repository by now
        raise DatabaseError("checksumming failed")

    monkeypatch.setattr("nodes.mariadb.table_fingerprint", fail_after_the_dump_is_stored)

    with pytest.raises(DatabaseError, match="checksumming failed"):
        consistent_db_backup(mariadb, sample_schema, local_repo, tags=TAGS, filename="db.sql")

    assert restic.snapshots(local_repo) == []
    assert_writable(mariadb, sample_schema)


def test_restoring_a_snapshot_without_the_dump_touches_nothing(mariadb, sample_schema, local_repo):
    summary, _ = consistent_db_backup(
        mariadb, sample_schema, local_repo, tags=TAGS, filename="db.sql"
    )
    before = schema_fingerprint(mariadb, sample_schema)

    with pytest.raises(ResticError) as caught:
        restore_db(local_repo, summary.snapshot_id, "other.sql", mariadb, sample_schema)

    assert caught.value.kind == "not_found"
    assert schema_fingerprint(mariadb, sample_schema) == before


def test_a_dump_mariadb_refuses_fails_the_restore_with_its_words(mariadb, schemas, local_repo):
    script = "import sys; sys.stdout.write('SELEC nonsense;\\n-- Dump completed\\n')"
    producer = SubprocessProducer([sys.executable, "-c", script], description="bad dump")
    summary = restic.backup_stream(local_repo, producer, filename="bad.sql", tags=TAGS)

    with pytest.raises(RestoreFailed) as caught:
        restore_db(local_repo, summary.snapshot_id, "bad.sql", mariadb, schemas(create=False))

    assert "You have an error in your SQL syntax" in caught.value.message
    assert "incomplete" in caught.value.message


def test_errors_are_farm_errors():
    assert issubclass(DumpFailed, FarmError) and issubclass(ResticError, FarmError)
    assert issubclass(RestoreFailed, FarmError)
