"""Queue entry points for the nodes app."""

from __future__ import annotations

import logging

from nodes.inventory import sync_nodes
from nodes.swarm import SwarmError

logger = logging.getLogger(__name__)


def sync_node_inventory() -> str:
    try:
        return str(sync_nodes())
    except SwarmError as exc:
        # No engine is a state, not a crash: the Nodes page shows the last sync.
        logger.warning("node sync skipped: %s", exc.message)
        return f"skipped: {exc.message}"
