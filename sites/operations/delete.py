"""Delete a site: each provision step in reverse; purging also forgets files and backups."""

from __future__ import annotations

from farm.models import Operation
from farm.operations import register_kind
from sites import steps
from sites.models import SiteStatus
from sites.operations.base import SiteKind


@register_kind
class DeleteSite(SiteKind):
    name = "site.delete"
    label = "Delete"
    steps = (
        steps.RemoveMonitoring(),
        steps.RemoveDns(),
        steps.RemoveStack(),
        steps.DropDatabase(),
        steps.PurgeFiles(),
        steps.PurgeBackups(),
    )

    def requires_operator(self, operation: Operation) -> bool:
        # Only operators purge files and backups (sites.services.delete_site); a
        # tenant must not restart (or stop half-way) a purge an operator began.
        return bool(operation.params.get("purge")) or super().requires_operator(operation)

    def on_succeeded(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.DELETED, maintenance=False)

    def on_failed(self, operation: Operation) -> None:
        self._set(operation, last_error=operation.error)
