"""What went wrong with mariadb-dump, mariabackup or a restore into MariaDB."""

from __future__ import annotations

import re

from backups.restic import ProducerFailed
from farm.errors import FarmError

# mariadb-dump / mariabackup texts after which trying again can help.
_TRANSIENT_DUMP = re.compile(
    r"Can't connect|Lost connection|server has gone away|Got error: 20(?:02|03|06|13)|"
    r"Lock wait timeout|Deadlock found|Too many connections",
    re.I,
)


class DumpFailed(ProducerFailed):
    """mariadb-dump or mariabackup, feeding ``restic backup --stdin``, failed; no snapshot
    was kept. Retryable when what it said last is one of the transient MariaDB errors."""

    def __init__(self, message: str, *, stderr_tail: str = "", retryable: bool | None = None):
        if retryable is None:
            retryable = bool(_TRANSIENT_DUMP.search(stderr_tail))
        super().__init__(message, stderr_tail=stderr_tail, retryable=retryable)


class RestoreFailed(FarmError):
    """A database restore did not complete; the target schema is incomplete."""
