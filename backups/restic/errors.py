"""What went wrong with restic, or with the process feeding it, in words people can act on.

restic 0.14 exits with 1 for every fatal error (the specific exit codes for a
missing repository, a lock or a wrong password came in 0.17), so the kind is
read from its stderr. Network errors are looked for before "Is there a
repository at the following location?", which restic prints for both.
"""

from __future__ import annotations

import re

from farm.errors import FarmError

KINDS = (
    "wrong_password",
    "unreachable",
    "no_space",
    "locked",
    "not_found",
    "not_initialised",
    "failed",
)
RETRYABLE_KINDS = frozenset({"unreachable", "locked"})

# Checked in this order; the first kind with a matching pattern wins.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("wrong_password", re.compile(r"wrong password or no key found", re.I)),
    ("locked", re.compile(r"repository is already locked|unable to create lock", re.I)),
    ("no_space", re.compile(r"no space left on device|disk quota exceeded", re.I)),
    (
        "unreachable",
        re.compile(
            r"connection refused|no such host|i/o timeout|network is unreachable|"
            r"connection reset|host is down|no route to host|tls handshake timeout|"
            r"context deadline exceeded|server misbehaving|dial tcp|"
            r"did not finish within|EOF\b.*(?:Get|Put|Head)",
            re.I,
        ),
    ),
    (
        "not_found",
        re.compile(
            r"no matching ID found|no snapshot (?:found|matched)|not found in snapshot|"
            r"failed to find snapshot|target directories/files do not exist",
            re.I,
        ),
    ),
    (
        "not_initialised",
        re.compile(
            r"Is there a repository at the following location|unable to open config file|"
            r"NoSuchBucket|specified bucket does not exist",
            re.I,
        ),
    ),
)

_SUMMARY = {
    "wrong_password": "The restic password does not open the backup repository {url}",
    "unreachable": "The backup repository {url} cannot be reached",
    "no_space": "The backup repository {url} has no space left",
    "locked": "The backup repository {url} is locked by another restic process",
    "not_found": "restic found no such snapshot or path in {url}",
    "not_initialised": "There is no restic repository at {url}",
    "failed": "restic {command} failed",
}


def classify(stderr: str) -> str:
    for kind, pattern in _PATTERNS:
        if pattern.search(stderr):
            return kind
    return "failed"


def restic_words(stderr: str, *, limit: int = 800) -> str:
    """restic's own account: its ``Fatal:`` lines, else its last lines."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("Fatal:", "error:", "Error:"))]
    words = " / ".join(fatal or lines[-4:])
    return words if len(words) <= limit else "..." + words[-limit:]


class ResticError(FarmError):
    """restic failed; ``kind`` says how (one of ``KINDS``)."""

    def __init__(self, message: str, *, kind: str = "failed", retryable: bool | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown restic error kind {kind!r}")
        super().__init__(
            message, retryable=kind in RETRYABLE_KINDS if retryable is None else retryable
        )
        self.kind = kind

    @classmethod
    def from_stderr(
        cls, *, command: str, url: str, returncode: int, stderr: str, kind: str | None = None
    ) -> ResticError:
        kind = kind or classify(stderr)
        summary = _SUMMARY[kind].format(url=url, command=command)
        if kind == "failed":
            summary += f" (exit status {returncode})"
        words = restic_words(stderr)
        return cls(f"{summary}: {words}" if words else summary + ".", kind=kind)


class ProducerFailed(FarmError):
    """The process feeding ``restic backup --stdin`` failed; no snapshot was kept.
    ``stderr_tail`` is what it said last. A producer says which error it fails with
    (``StreamProducer.failure``): mariadb-dump's is ``backups.mariadb.DumpFailed``."""

    def __init__(self, message: str, *, stderr_tail: str = "", retryable: bool = False):
        super().__init__(message, retryable=retryable)
        self.stderr_tail = stderr_tail
