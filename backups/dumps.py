"""Site database backups and restores, their manifests, and physical backups.

The producers (mariadb-dump, mariabackup) and the credentials file are in
``backups.mariadb_tools``; this module re-exports them with the manifests. The
SQL (the lock, the snapshot, the table fingerprint) is ``nodes.mariadb``'s.

``consistent_db_backup`` takes a manifest (row count and an order-independent
checksum per table) that describes exactly the data in the dump, even while
the site writes: the dump's snapshot and the manifest's are opened under one
global read lock, held only until mariadb-dump shows it has its snapshot.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
import time
from contextlib import suppress
from typing import Any

from backups import restic
from backups.manifests import compare_manifests, files_manifest, read_manifest, write_manifest
from backups.mariadb_tools import (
    PhysicalBackupProducer,
    SiteDbDump,
    dump_completed,
    mariadb_option_file,
    physical_backup_producer,
)
from backups.restic_cli import setting
from backups.restic_errors import DumpFailed, ResticError
from backups.streams import base_env, enlarge_pipe, pump
from farm import processes
from farm.errors import FarmError
from nodes import mariadb
from nodes.mariadb import Endpoint

__all__ = [
    "PhysicalBackupProducer",
    "RestoreFailed",
    "SiteDbDump",
    "compare_manifests",
    "consistent_db_backup",
    "dump_completed",
    "files_manifest",
    "mariadb_option_file",
    "physical_backup_producer",
    "read_manifest",
    "restore_db",
    "write_manifest",
]

log = logging.getLogger(__name__)

# Lines mariadb-dump writes only after START TRANSACTION WITH CONSISTENT SNAPSHOT.
_SNAPSHOT_MARKERS = (
    b"\n-- Table structure for table ",
    b"\n-- Temporary table structure for view ",
    b"\n-- Dumping events for database ",
    b"\n-- Dumping routines for database ",
)


class RestoreFailed(FarmError):
    """A database restore did not complete; the target schema is incomplete."""


class _SnapshotWatcher:
    """Watches the dump stream for the first line written after its snapshot began."""

    def __init__(self) -> None:
        self.release = threading.Event()  # marker seen, or the stream/backup is over
        self.marker_seen = False
        self.abandoned: str | None = None
        self._carry = b""

    def __call__(self, chunk: bytes) -> None:
        if self.abandoned:
            raise RuntimeError(self.abandoned)
        if self.release.is_set():
            return
        window = self._carry + chunk
        if any(marker in window for marker in _SNAPSHOT_MARKERS):
            self.marker_seen = True
            self.release.set()
        elif not chunk:
            self.release.set()
        self._carry = window[-64:]


def consistent_db_backup(
    endpoint: Endpoint,
    database: str,
    repo: restic.Repository,
    *,
    tags: dict[str, str],
    filename: str,
) -> tuple[restic.Summary, dict[str, dict[str, int]]]:
    """Dump ``database`` into the repository and take its manifest from the same snapshot.

    On a separate connection: FLUSH TABLES WITH READ LOCK (waiting at most
    FARM_BACKUP_LOCK_WAIT_TIMEOUT for running statements), START TRANSACTION WITH
    CONSISTENT SNAPSHOT, start mariadb-dump --single-transaction, UNLOCK TABLES
    as soon as the dump shows its snapshot is open; then checksum every table in
    the held transaction while the dump streams. Writes wait only meanwhile.
    """
    mariadb.check_identifier(database)
    lock_wait = int(setting("FARM_BACKUP_LOCK_WAIT_TIMEOUT"))
    max_lock = float(setting("FARM_BACKUP_MAX_LOCK_SECONDS"))
    producer = SiteDbDump(endpoint, database)
    watcher = _SnapshotWatcher()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["summary"] = restic.backup_stream(
                repo, producer, filename=filename, tags=tags, on_data=watcher
            )
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            watcher.release.set()

    worker = threading.Thread(target=work, name=f"backup-{database}", daemon=True)
    with mariadb.backup_session(endpoint, database) as session:
        session.lock_all_tables(lock_wait_timeout=lock_wait)
        locked_at = time.monotonic()
        try:
            session.start_snapshot()
            worker.start()
            if not watcher.release.wait(max_lock):
                watcher.abandoned = (
                    f"mariadb-dump had not opened its snapshot after {max_lock:g} s "
                    "(the global read lock is never held longer)"
                )
                producer.kill()
        except BaseException:
            watcher.abandoned = "the backup was interrupted"
            producer.kill()
            raise
        finally:
            session.unlock_tables()
        log.info(
            "backup of %s: global read lock held %.1f ms",
            database,
            1000 * (time.monotonic() - locked_at),
        )
        manifest: dict[str, dict[str, int]] = {}
        try:
            if watcher.abandoned is None and "error" not in outcome:
                manifest = session.fingerprint()
        except BaseException:
            # A backup without its manifest is not kept, even if already stored.
            watcher.abandoned = "the manifest could not be taken"
            producer.kill()
            worker.join()
            if "summary" in outcome:
                with suppress(ResticError):
                    restic.forget(repo, [outcome["summary"].snapshot_id])
            raise
        finally:
            session.end_snapshot()
        worker.join()
    if "error" in outcome:
        error = outcome["error"]
        if watcher.abandoned and isinstance(error, FarmError):
            raise DumpFailed(f"{watcher.abandoned}. {error.message}", retryable=True) from error
        raise error
    return outcome["summary"], manifest


# -- restore ----------------------------------------------------------------------


def restore_db(
    repo: restic.Repository,
    snapshot_id: str,
    filename: str,
    endpoint: Endpoint,
    database: str,
) -> None:
    """Replace ``database`` with the dump ``/<filename>`` of the snapshot.

    The snapshot is checked first (nothing is dropped for a missing one); then
    the schema is dropped and created again (utf8mb4) and ``restic dump`` is
    piped into ``mariadb``. Both exit statuses and the dump's last line are
    checked; on failure the schema is left incomplete and RestoreFailed or
    ResticError says so.
    """
    mariadb.check_identifier(database)
    path = "/" + filename.lstrip("/")
    if not any(node.get("path") == path for node in restic.ls(repo, snapshot_id)):
        raise ResticError(
            f"Snapshot {snapshot_id[:8]} in {repo.url} holds no {path}.", kind="not_found"
        )
    mariadb.recreate_schema(endpoint, database, what=f"MariaDB (restore of {database})")
    with (
        mariadb_option_file(endpoint) as options,
        tempfile.TemporaryFile() as client_err,
        tempfile.TemporaryFile() as restic_err,
    ):
        client = processes.popen(
            [
                "mariadb",
                f"--defaults-extra-file={options}",
                "--default-character-set=utf8mb4",
                "--max-allowed-packet=1G",
                "--batch",
                database,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=client_err,
            env=base_env(HOME=str(options.parent)),
            bufsize=0,
        )
        assert client.stdin is not None
        enlarge_pipe(client.stdin)
        source = restic.dump(repo, snapshot_id, path, stderr=restic_err)
        assert source.stdout is not None
        try:
            result = pump(source.stdout, client.stdin)
            if not result.ok:
                source.kill()
            source_status = source.wait()
            if result.write_error or (client.poll() or 0) != 0:
                client.wait()
                raise RestoreFailed(
                    f"mariadb stopped restoring {database} (exit status {client.returncode}); "
                    f"the database is incomplete: {_text(client_err)}"
                )
            if source_status != 0:
                client.kill()  # never let it run the statement the stream was cut in
                raise ResticError.from_stderr(
                    command="dump",
                    url=repo.url,
                    returncode=source_status,
                    stderr=_text(restic_err) + f" (the database {database} is incomplete)",
                )
            if problem := result.read_error or dump_completed(result.tail):
                client.kill()
                raise RestoreFailed(f"Restoring {database}: {problem}; the database is incomplete.")
            client.stdin.close()
            if client.wait() != 0:
                raise RestoreFailed(
                    f"mariadb could not restore {database} (exit status {client.returncode}); "
                    f"the database is incomplete: {_text(client_err)}"
                )
        finally:
            for proc in (source, client):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            with suppress(OSError):
                client.stdin.close()


def _text(file: Any, limit: int = 2000) -> str:
    file.seek(0)
    text = str(file.read().decode("utf-8", "replace")).strip()
    return text if len(text) <= limit else "..." + text[-limit:]
