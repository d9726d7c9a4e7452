"""What every operation kind on a site shares: its target is a Site."""

from __future__ import annotations

from farm.models import Operation
from farm.operations import OperationKind
from sites.models import Site


class SiteKind(OperationKind):
    target_type = "site"

    def get_target(self, operation: Operation) -> Site:
        return Site.objects.select_related("tenant").get(pk=operation.target_id)

    def _set(self, operation: Operation, **fields: object) -> None:
        site = self.get_target(operation)
        for name, value in fields.items():
            setattr(site, name, value)
        site.save(update_fields=list(fields))
