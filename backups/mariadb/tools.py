"""The MariaDB command-line tools as producers (mariadb-dump, mariabackup) and their credentials.

Credentials reach the tools in a 0600 option file given as the first option
(``--defaults-extra-file``), in a private directory that is also their HOME (so
no ~/.my.cnf joins in), deleted as soon as the tool has ended.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backups.mariadb.errors import DumpFailed
from backups.restic import SubprocessProducer, base_env
from nodes.mariadb import DatabaseError, Endpoint, check_identifier

_COMPLETED = b"-- Dump completed"
DUMP_OPTIONS = (
    "--single-transaction",
    "--quick",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
    "--default-character-set=utf8mb4",
    "--skip-lock-tables",
)


# -- credentials ------------------------------------------------------------------


def _option_value(value: str) -> str:
    if any(c in value for c in "\r\n\x00"):
        raise DatabaseError("A MariaDB user or password with a line break cannot be used.")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_option_file(directory: Path, endpoint: Endpoint) -> Path:
    path = directory / "client.cnf"
    text = (
        "[client]\n"
        f"user={_option_value(endpoint.user)}\n"
        f"password={_option_value(endpoint.password)}\n"
        f"host={_option_value(endpoint.host)}\n"
        f"port={int(endpoint.port)}\n"
        "protocol=TCP\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    return path


@contextmanager
def mariadb_option_file(endpoint: Endpoint) -> Iterator[Path]:
    """A 0600 ``[client]`` option file in a private directory, deleted afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="farm-mariadb-"))
    try:
        yield _write_option_file(directory, endpoint)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- producers --------------------------------------------------------------------


def dump_completed(tail: bytes) -> str | None:
    """None when the stream ends with mariadb-dump's last line, else why it is not whole."""
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if last.startswith(_COMPLETED):
        return None
    return "the dump does not end with mariadb-dump's '-- Dump completed' line (it was cut short)"


class MariadbProducer(SubprocessProducer):
    """A MariaDB tool as a producer: its failures are DumpFailed (retryable when what
    it said is a transient MariaDB error)."""

    def failure(self, message: str, *, stderr_tail: str = "") -> DumpFailed:
        return DumpFailed(message, stderr_tail=stderr_tail)


class SiteDbDump(MariadbProducer):
    """``mariadb-dump`` of one schema without CREATE DATABASE/USE: it restores into any name."""

    def __init__(self, endpoint: Endpoint, database: str) -> None:
        super().__init__(
            ["mariadb-dump"], description=f"mariadb-dump of {check_identifier(database)}"
        )
        self.endpoint = endpoint
        self.database = database
        self._private: Path | None = None

    def command(self) -> list[str]:
        self._private = Path(tempfile.mkdtemp(prefix="farm-dump-"))
        options = _write_option_file(self._private, self.endpoint)
        self.env = base_env(HOME=str(self._private))
        return ["mariadb-dump", f"--defaults-extra-file={options}", *DUMP_OPTIONS, self.database]

    def cleanup(self) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    def check_complete(self, tail: bytes) -> str | None:
        return dump_completed(tail)


class PhysicalBackupProducer(MariadbProducer):
    """``mariabackup --backup --stream=xbstream``: complete when it says "completed OK!"."""

    def check_complete(self, tail: bytes) -> str | None:
        if "completed OK!" in self.stderr_tail(64 * 1024):
            return None
        return f"{self.description} did not report 'completed OK!'"


def physical_backup_producer(
    argv: list[str], env: dict[str, str] | None = None
) -> PhysicalBackupProducer:
    return PhysicalBackupProducer(argv, base_env(**(env or {})), description="mariabackup")
