"""Queue entry points for the nodes app."""

from __future__ import annotations

import logging

from nodes.inventory import record_engine_status, sync_nodes
from nodes.swarm import SwarmError, engine_status

logger = logging.getLogger(__name__)


def sync_node_inventory() -> str:
    """Every minute: the Node rows, and the engine status the panel's banner shows."""
    available, why = engine_status()
    record_engine_status(available, why)
    if not available:
        logger.warning("node sync skipped: %s", why)
        return f"skipped: {why}"
    try:
        return str(sync_nodes())
    except SwarmError as exc:
        # No engine is a state, not a crash: the Nodes page shows the last sync.
        record_engine_status(False, exc.message)
        logger.warning("node sync skipped: %s", exc.message)
        return f"skipped: {exc.message}"
