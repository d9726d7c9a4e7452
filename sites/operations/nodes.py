"""The operations on a node that follow its sites: ``node.drain`` (an operator moves
every task off a node) and ``node.failover`` (the node watcher saw it go down). Both
end with one SiteOutage row per site that had tasks there. ``node.activate`` and
``node.remove`` touch only the Swarm: they are the nodes app's."""

from __future__ import annotations

from farm.operations import register_kind
from nodes.models import NodeAvailability
from nodes.node_operations import CheckDrainable, NodeKind, SetAvailability, WaitTasksMoved
from sites import steps
from sites.models import OutageCause


@register_kind
class DrainNode(NodeKind):
    name = "node.drain"
    label = "Drain"
    steps = (
        CheckDrainable(),
        steps.RecordSitesOnNode(),
        SetAvailability(NodeAvailability.DRAIN, undo_to=NodeAvailability.ACTIVE),
        WaitTasksMoved(),
        steps.WaitSitesAnswer(OutageCause.DRAIN),
    )


@register_kind
class FailOverNode(NodeKind):
    name = "node.failover"
    label = "Fail over"
    reversible = False  # it changes nothing: Swarm moves the tasks, this follows them
    steps = (
        steps.RaiseNodeDown(),
        steps.RecordSitesOnNode(last_known=True),
        steps.WaitSitesAnswer(OutageCause.NODE_DOWN),
    )
