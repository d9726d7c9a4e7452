"""The local multi-node farm: N Docker Engines in containers on this one machine.

docs/plans/multi-node.md (D1, D2, D5) is the design. The host engine only runs
the node containers (the ``farm/node`` image) and is a client; every node is
alike and can be killed or paused.

- ``plan.py``: pure, no Docker: which node gets which Swarm role and farm roles
  (``plan_roles``), its address on the ``farm-nodes`` bridge, and the
  ``containers.run`` arguments of its engine container (``run_kwargs``).
- ``engines.py``: start, kill, pause, unpause and remove an engine container; a
  client for a node's own engine (``engine_client``, ``wait_until_ready``).
- ``ipsec.py``: whether this kernel can carry encrypted overlays (``ipsec_supported``).
- ``swarm.py``: forming the Swarm (join tokens never logged), tuning its spec
  (read-modify-write) and labelling the planned roles.

Everything here raises ``LocalNodeError`` (a SwarmError: the engines are Docker too).
"""

from __future__ import annotations

from nodes.swarm import SwarmError


class LocalNodeError(SwarmError):
    """A node engine of the local farm could not be started, reached or joined."""


__all__ = ["LocalNodeError"]
