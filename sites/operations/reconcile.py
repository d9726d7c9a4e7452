"""Reconcile: compare every site with Swarm, MariaDB and the disk (``sites.reconcile``),
as an operation with live progress. Its target is the farm's sites as a whole, so the
engine's one-unfinished-operation-per-target rule lets one run at a time."""

from __future__ import annotations

from farm.models import Operation
from farm.operations import OperationKind, register_kind
from sites import steps
from sites.reconcile import keep_report

RECONCILE_TARGET_TYPE = "farm"
RECONCILE_TARGET_ID = "sites"
RECONCILE_TARGET_REPR = "every site"


@register_kind
class ReconcileSites(OperationKind):
    name = "site.reconcile"
    label = "Reconcile"
    target_type = RECONCILE_TARGET_TYPE
    operator_only = True
    reversible = False  # it repairs routes and reads the rest: nothing to undo
    steps = (steps.ResyncRoutes(), steps.CompareSites(), steps.KeepReport())

    def on_failed(self, operation: Operation) -> None:
        """A comparison that could not be made is kept too, with why and what was found."""
        if operation.state.get("report"):
            return
        report = keep_report(steps.found(operation.state), error=operation.error)
        state = {**operation.state, "report": report.pk}
        Operation.objects.filter(pk=operation.pk).update(state=state)
