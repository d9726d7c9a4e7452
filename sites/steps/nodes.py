"""The steps of a node's operations that know its sites: which sites had tasks on the
node, how long each was unreachable through the edge until it answered again (the
SiteOutage rows), and the NodeDown alert that names them. The steps that touch only
the Swarm are the nodes app's (nodes/node_operations.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from farm.operations import Step, StepContext
from monitoring.node_alerts import raise_node_down
from nodes import swarm_nodes
from nodes.edge import EdgeError, OutageProbe
from nodes.models import Node
from nodes.node_operations import keep_probes, look_once, node_of, probes_of
from nodes.swarm_client import SwarmError
from sites.models import OutageCause, Site, SiteOutage


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def site_ids_on_node(node: Node, *, last_known: bool) -> set[int]:
    """The sites with a live task on the node. ``last_known`` for a node that is down:
    its tasks are still listed, in the state it last reported."""
    tasks = swarm_nodes.tasks_on_node(node.swarm_id, desired_running=not last_known)
    ids = {
        swarm_nodes.task_site_id(t) for t in tasks if swarm_nodes.is_live(t, last_known=last_known)
    }
    return {i for i in ids if i is not None}


class RecordSitesOnNode(Step):
    """Which sites have tasks on the node (kept in the operation's state)."""

    name = "record-sites"
    label = "Record the sites with tasks on the node"

    def __init__(self, *, last_known: bool = False) -> None:
        self.last_known = last_known

    def run(self, ctx: StepContext) -> None:
        node = node_of(ctx)
        if "sites" in ctx.state:
            ctx.log(f"{len(ctx.state['sites'])} site(s) recorded already")
            return
        ids = site_ids_on_node(node, last_known=self.last_known)
        sites = Site.objects.filter(pk__in=ids).order_by("pk")
        ctx.state["sites"] = [
            {"id": s.pk, "domain": s.domain, "stack": s.stack_name} for s in sites
        ]
        ctx.save_state()
        names = ", ".join(f"{s.stack_name} ({s.domain})" for s in sites) or "none"
        ctx.log(f"{node.hostname}: {len(sites)} site(s) with tasks on it: {names}")


class WaitSitesAnswer(Step):
    """Ask every recorded site through the edge until each answers, then write one
    SiteOutage row per site and a line such as "wp-3 node-2 → node-3, unreachable 2.1 s"."""

    name = "wait-sites-answer"
    label = "Wait until every site answers through the edge"

    def __init__(self, cause: str) -> None:
        self.cause = cause

    def run(self, ctx: StepContext) -> None:
        node = node_of(ctx)
        if self.cause == OutageCause.NODE_DOWN:
            ctx.state.setdefault("started_at", ctx.params.get("down_at") or time.time())
        started = float(ctx.state.setdefault("started_at", time.time()))
        probes = probes_of(ctx)
        # Looks before this step (a drain's, while its tasks moved) count for the outage,
        # but each site must answer to a look of this one: the first round asks them all.
        asking = probes
        deadline = time.monotonic() + settings.FARM_OUTAGE_TIMEOUT
        while True:
            look_once(ctx, asking)
            asking = [p for p in probes if not p.answering]
            if not asking or time.monotonic() > deadline:
                break
            ctx.check_cancelled()
            time.sleep(settings.FARM_OUTAGE_PROBE_EVERY)
        keep_probes(ctx, probes)
        late = [p for p in probes if not p.answering]
        for line in self.write_rows(ctx, node, started, [p for p in probes if p.answering]):
            ctx.log(line)
        if late:
            raise EdgeError(
                "Not answering through the edge within "
                f"{settings.FARM_OUTAGE_TIMEOUT} s: "
                + ", ".join(f"{p.domain} ({p.note})" for p in late),
                retryable=True,
            )
        if not probes:
            ctx.log(f"{node.hostname} had no site")

    def write_rows(
        self, ctx: StepContext, node: Node, started: float, probes: list[OutageProbe]
    ) -> list[str]:
        by_domain = {s["domain"]: s for s in ctx.state.get("sites", [])}
        moved = ctx.state.get("moved_to", {})
        lines = []
        with transaction.atomic():
            for probe in probes:
                site = by_domain[probe.domain]
                rto = None
                if self.cause == OutageCause.NODE_DOWN and probe.answered_at is not None:
                    rto = max(probe.answered_at - started, 0.0)
                to = ", ".join(moved.get(str(site["id"]), [])) or "another node"
                # A failed node's outage began when Swarm marked it down; a drain's at
                # the first GET that failed (or the drain, if none did).
                down = self.cause == OutageCause.NODE_DOWN
                began = started if down else (probe.first_failed_at or started)
                SiteOutage.objects.update_or_create(
                    operation_id=ctx.operation.pk,
                    site_id=site["id"],
                    defaults={
                        "node": node,
                        "cause": self.cause,
                        "moved_to": to[:255],
                        "started_at": _at(began),
                        "answered_at": None
                        if probe.answered_at is None
                        else _at(probe.answered_at),
                        "unreachable_s": round(probe.unreachable_s, 3),
                        "rto_s": None if rto is None else round(rto, 3),
                    },
                )
                line = f"{site['stack']} {node.hostname} → {to}"
                line += f", unreachable {probe.unreachable_s:.1f} s"
                lines.append(line + ("" if rto is None else f", RTO {rto:.1f} s"))
        return lines


class RaiseNodeDown(Step):
    """The critical NodeDown alert, with the node and the domains of its sites (raising
    it again refreshes the one firing alert)."""

    name = "raise-node-down"
    label = "Raise the NodeDown alert"

    def run(self, ctx: StepContext) -> None:
        node = node_of(ctx)
        try:
            ids = site_ids_on_node(node, last_known=True)
        except SwarmError as exc:
            # The alert matters more than its list: the last sync's is good enough.
            ids = set(node.seen_site_ids or [])
            ctx.log(f"the Swarm did not list the node's tasks ({exc.message}); using the last sync")
        domains = list(
            Site.objects.filter(pk__in=ids).order_by("domain").values_list("domain", flat=True)
        )
        alert = raise_node_down(node, domains)
        ctx.log(f"NodeDown #{alert.pk} firing for {node.hostname}: {len(domains)} site(s)")
