"""The one error shape every external-system module raises.

Each client module (sites/dns.py, backups/restic.py, ...) subclasses
FarmError so that the Operation engine, views and alerts can show a human
message and know whether trying again can help, without knowing which system
failed.
"""

from __future__ import annotations


class FarmError(Exception):
    """A failure with a message for people and a hint for the retry logic."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class OperationConflict(FarmError):
    """Another operation is already unfinished for the same target."""


class OperationStateError(FarmError):
    """The operation is not in a state that allows what was asked."""


class QuotaExceeded(FarmError):
    """A tenant asked for more than its quota."""
