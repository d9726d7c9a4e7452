"""The steps of reconcile: write Traefik's routes back, compare every site with Swarm,
MariaDB and the disk, keep the report. The first two only read the panel's rows;
what they find goes into the operation's state, so a retry resumes where it failed."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from farm.operations import Step, StepContext
from sites.reconcile import Finding, find_drift, keep_report, restore_routes

# The step log lists at most this many findings; the report page lists them all.
LOGGED_FINDINGS = 50


def _log_findings(ctx: StepContext, findings: list[Finding]) -> None:
    for finding in findings[:LOGGED_FINDINGS]:
        ctx.log(f"{finding.kind}: {finding.what}: {finding.detail}")
    if len(findings) > LOGGED_FINDINGS:
        ctx.log(f"… and {len(findings) - LOGGED_FINDINGS} more (see the report)")


def found(state: dict[str, Any]) -> list[dict[str, Any]]:
    """What the steps so far found (from the operation's state), as the report keeps it."""
    return [*state.get("routes", []), *state.get("drift", [])]


class ResyncRoutes(Step):
    name = "routes"
    label = "Write Traefik's routes back"

    def run(self, ctx: StepContext) -> None:
        findings = restore_routes()
        ctx.state["routes"] = [asdict(f) for f in findings]
        _log_findings(ctx, findings)
        ctx.log(f"{len(findings)} route(s) written back or removed")


class CompareSites(Step):
    name = "compare"
    label = "Compare every site with Swarm, MariaDB and the disk"

    def run(self, ctx: StepContext) -> None:
        findings = find_drift()
        ctx.state["drift"] = [asdict(f) for f in findings]
        _log_findings(ctx, findings)
        drift = sum(f.kind == "drift" for f in findings)
        ctx.log(f"{drift} drift, {len(findings) - drift} orphan(s)")


class KeepReport(Step):
    name = "report"
    label = "Keep the report"

    def run(self, ctx: StepContext) -> None:
        if ctx.state.get("report"):
            ctx.skip(f"report #{ctx.state['report']} is kept")
        report = keep_report(found(ctx.state))
        ctx.state["report"] = report.pk
        ctx.log(
            f"report #{report.pk}: {report.drift} drift, {report.orphans} orphans "
            "(on the Drift & orphans page)"
        )
