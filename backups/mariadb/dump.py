"""Site database backups: mariadb-dump into ``restic backup --stdin``, with a manifest.

``consistent_db_backup`` takes a manifest (row count and an order-independent
checksum per table) that describes exactly the data in the dump, even while
the site writes: the dump's snapshot and the manifest's are opened under one
global read lock, held only until mariadb-dump shows it has its snapshot. The
SQL (the lock, the snapshot, the table fingerprint) is ``nodes.mariadb``'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from backups.mariadb import settings as dump_settings
from backups.mariadb.errors import DumpFailed
from backups.mariadb.tools import SiteDbDump
from backups.models import Backup, BackupKind
from backups.restic import (
    Repository,
    ResticError,
    SiteRef,
    Summary,
    backup_stream,
    forget,
    run_backup,
    site_tags,
)
from farm.env import app_setting
from farm.errors import FarmError
from nodes import mariadb
from nodes.mariadb import Endpoint

log = logging.getLogger(__name__)

DB_FILENAME = "database.sql"  # the dump's name inside a database snapshot

# Lines mariadb-dump writes only after START TRANSACTION WITH CONSISTENT SNAPSHOT.
_SNAPSHOT_MARKERS = (
    b"\n-- Table structure for table ",
    b"\n-- Temporary table structure for view ",
    b"\n-- Dumping events for database ",
    b"\n-- Dumping routines for database ",
)


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
    repo: Repository,
    *,
    tags: dict[str, str],
    filename: str,
) -> tuple[Summary, dict[str, dict[str, int]]]:
    """Dump ``database`` into the repository and take its manifest from the same snapshot.

    On a separate connection: FLUSH TABLES WITH READ LOCK (waiting at most
    FARM_BACKUP_LOCK_WAIT_TIMEOUT for running statements), START TRANSACTION WITH
    CONSISTENT SNAPSHOT, start mariadb-dump --single-transaction, UNLOCK TABLES
    as soon as the dump shows its snapshot is open; then checksum every table in
    the held transaction while the dump streams. Writes wait only meanwhile.
    """
    mariadb.check_identifier(database)
    lock_wait = int(app_setting("FARM_BACKUP_LOCK_WAIT_TIMEOUT", dump_settings))
    max_lock = float(app_setting("FARM_BACKUP_MAX_LOCK_SECONDS", dump_settings))
    producer = SiteDbDump(endpoint, database)
    watcher = _SnapshotWatcher()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["summary"] = backup_stream(
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
                    forget(repo, [outcome["summary"].snapshot_id])
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


def back_up_database(
    site: SiteRef, schema: str, *, reason: str, operation_id: int | None, log: Callable[[str], None]
) -> Backup:
    """The site's database ``schema``: its dump and its manifest, into restic."""

    def take(repo: Repository, backup: Backup) -> tuple[Summary, dict[str, Any]]:
        summary, tables = consistent_db_backup(
            mariadb.admin_endpoint(),
            schema,
            repo,
            tags={**site_tags(site, BackupKind.DB), "backup": str(backup.pk)},
            filename=DB_FILENAME,
        )
        return summary, {"database": schema, "tables": tables}

    return run_backup(
        site=site, kind=BackupKind.DB, reason=reason, operation_id=operation_id, log=log, take=take
    )
