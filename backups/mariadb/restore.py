"""Site database restores: ``restic dump`` of a snapshot's dump piped into ``mariadb``."""

from __future__ import annotations

import subprocess
import tempfile
from contextlib import suppress
from typing import Any

from backups.mariadb.errors import RestoreFailed
from backups.mariadb.tools import dump_completed, mariadb_option_file
from backups.restic import Repository, ResticError, base_env, dump, enlarge_pipe, ls, pump
from farm import processes
from nodes import mariadb
from nodes.mariadb import Endpoint


def restore_db(
    repo: Repository,
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
    if not any(node.get("path") == path for node in ls(repo, snapshot_id)):
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
        source = dump(repo, snapshot_id, path, stderr=restic_err)
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
