"""Forming, tuning and labelling the local farm's Swarm (plan C5).

- ``form_swarm``: node-1 initialises the Swarm on its own address; the others
  join it with the manager or worker token. The tokens come from
  ``inspect_swarm()["JoinTokens"]`` and go only into ``join_swarm``: never into a
  message, a log line or an exception (every engine error passing through here is
  masked with farm.redaction.mask_swarm_secrets as well).
- ``tune_swarm``: the dispatcher heartbeat and the task history limit, as a
  read-modify-write of the **whole** ``Spec``. Not ``client.swarm.update(**kw)``:
  docker-py 7.2's ``Swarm.update`` posts ``create_swarm_spec(**kw)``, a SwarmSpec
  holding only the fields named in ``kw`` (and a NodeCertExpiry of its own), and
  the Engine takes the posted spec as the complete new spec (moby's cluster
  ``Update``: "client should provide the complete spec"), so Raft, CA, Name and
  Labels would fall back to their defaults.
- ``label_roles``: each node's ``farm.role.*`` labels become exactly its planned roles.

Clients for the nodes are passed in (``{node name: DockerClient}``, e.g. from
``engines.wait_until_ready``), so this module only speaks the Engine API.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import docker
import docker.errors

from farm.redaction import mask_swarm_secrets
from nodes.local_nodes import LocalNodeError
from nodes.local_nodes.engines import engine_errors
from nodes.local_nodes.plan import NodeSpec
from nodes.platform import ROLE_LABELS, role_label

logger = logging.getLogger(__name__)

SWARM_PORT = 2377
SECOND_NS = 1_000_000_000

Progress = Callable[[str], None]


def _swarm_errors(action: str) -> AbstractContextManager[None]:
    return engine_errors(action, engine="the node's engine")


def _swarm_state(cli: docker.DockerClient, node: str) -> dict[str, Any]:
    with _swarm_errors(f"Reading {node}'s swarm state"):
        info: dict[str, Any] = cli.info()
    swarm: dict[str, Any] = info.get("Swarm") or {}
    return swarm


def form_swarm(
    specs: Sequence[NodeSpec],
    clients: Mapping[str, docker.DockerClient],
    *,
    progress: Progress = logger.info,
) -> dict[str, str]:
    """Make ``specs`` one Swarm led by the first node; returns node name -> Swarm node id.

    Idempotent: a node already in the swarm is left as it is. A node that is in
    another swarm (its state says so, but the cluster id differs) is refused: the
    init's FARM_NODE_FRESH=1 is what gives it a clean start.
    """
    if not specs:
        raise LocalNodeError("a swarm needs at least one node")
    first = specs[0]
    if not first.manager:
        raise LocalNodeError(f"{first.name} must be a manager to initialise the swarm")
    leader = clients[first.name]
    state = _swarm_state(leader, first.name)
    if state.get("LocalNodeState") == "active":
        if not state.get("ControlAvailable"):
            raise LocalNodeError(f"{first.name} is in a swarm but not as a manager")
        progress(f"{first.name}: already manages the swarm")
    else:
        with _swarm_errors(f"Initialising the swarm on {first.name}"):
            leader.api.init_swarm(
                advertise_addr=first.address,
                listen_addr=f"{first.address}:{SWARM_PORT}",
            )
        progress(f"{first.name}: initialised the swarm on {first.address}:{SWARM_PORT}")
    with _swarm_errors(f"Reading the swarm on {first.name}"):
        swarm = leader.api.inspect_swarm()
    managers = {f"{s.address}:{SWARM_PORT}" for s in specs if s.manager}
    ids = {first.name: _swarm_state(leader, first.name).get("NodeID", "")}
    for spec in specs[1:]:
        cli = clients[spec.name]
        state = _swarm_state(cli, spec.name)
        local = state.get("LocalNodeState") or "inactive"
        if local == "active":
            _check_same_swarm(spec, state, swarm.get("ID"), managers)
            progress(f"{spec.name}: already in the swarm")
        elif local == "inactive":
            _join(cli, spec, first, swarm["JoinTokens"])
            progress(f"{spec.name}: joined as {spec.swarm_role} via {first.address}")
        else:
            said = mask_swarm_secrets(str(state.get("Error") or "")).strip()
            raise LocalNodeError(
                f"{spec.name}'s swarm state is {local}" + (f": {said}" if said else ""),
                retryable=local == "pending",
            )
        ids[spec.name] = _swarm_state(cli, spec.name).get("NodeID", "")
    return ids


def _check_same_swarm(
    spec: NodeSpec, state: Mapping[str, Any], cluster_id: str | None, managers: set[str]
) -> None:
    """A node already in a swarm must be in this one: a manager shows the cluster id,
    a worker only the managers it talks to."""
    theirs = (state.get("Cluster") or {}).get("ID")
    remote = {m.get("Addr") for m in state.get("RemoteManagers") or []}
    if theirs and cluster_id and theirs != cluster_id:
        other = f"cluster {theirs}"
    elif not theirs and remote and not remote & managers:
        other = f"managed by {', '.join(sorted(str(a) for a in remote))}"
    else:
        return
    raise LocalNodeError(
        f"{spec.name} is in another swarm ({other}); start it fresh "
        "(FARM_NODE_FRESH=1) or make it leave first"
    )


def _join(
    cli: docker.DockerClient, spec: NodeSpec, leader: NodeSpec, tokens: Mapping[str, str]
) -> None:
    token = tokens["Manager" if spec.manager else "Worker"]
    with _swarm_errors(f"Joining {spec.name} to the swarm as {spec.swarm_role}"):
        cli.api.join_swarm(
            remote_addrs=[f"{leader.address}:{SWARM_PORT}"],
            join_token=token,
            listen_addr=f"{spec.address}:{SWARM_PORT}",
            advertise_addr=spec.address,
        )


def tuned_spec(
    spec: Mapping[str, Any], *, heartbeat_s: float | None, history: int | None
) -> dict[str, Any]:
    """A copy of the whole Swarm ``spec`` with only the heartbeat and the task history
    changed (None keeps a value as it is)."""
    merged: dict[str, Any] = copy.deepcopy(dict(spec))
    if heartbeat_s is not None:
        if heartbeat_s <= 0:
            raise LocalNodeError(f"the dispatcher heartbeat must be positive, not {heartbeat_s}")
        dispatcher = dict(merged.get("Dispatcher") or {})
        dispatcher["HeartbeatPeriod"] = round(heartbeat_s * SECOND_NS)
        merged["Dispatcher"] = dispatcher
    if history is not None:
        if history < 1:
            raise LocalNodeError(f"the task history limit must be at least 1, not {history}")
        orchestration = dict(merged.get("Orchestration") or {})
        orchestration["TaskHistoryRetentionLimit"] = history
        merged["Orchestration"] = orchestration
    return merged


def tune_swarm(
    cli: docker.DockerClient,
    *,
    heartbeat_s: float | None = None,
    history: int | None = None,
    progress: Progress = logger.info,
) -> bool:
    """Set the dispatcher heartbeat (seconds) and the task history limit on the swarm
    ``cli`` manages, keeping every other field of its spec. False when nothing changed.
    ``version`` makes the engine refuse the write if the spec changed since it was read."""
    with _swarm_errors("Reading the swarm's spec"):
        current = cli.api.inspect_swarm()
    spec = current.get("Spec") or {}
    wanted = tuned_spec(spec, heartbeat_s=heartbeat_s, history=history)
    if wanted == spec:
        progress("swarm spec already as wanted")
        return False
    with _swarm_errors("Updating the swarm's spec"):
        cli.api.update_swarm(version=current["Version"]["Index"], swarm_spec=wanted)
    period = (wanted.get("Dispatcher") or {}).get("HeartbeatPeriod")
    limit = (wanted.get("Orchestration") or {}).get("TaskHistoryRetentionLimit")
    progress(
        f"swarm tuned: dispatcher heartbeat {period / SECOND_NS if period else '?'}s, "
        f"task history {limit}"
    )
    return True


def label_roles(
    cli: docker.DockerClient,
    specs: Sequence[NodeSpec],
    *,
    progress: Progress = logger.info,
) -> None:
    """Give each planned node (matched by hostname) exactly its farm role labels,
    keeping every other label. A node missing from the swarm is an error."""
    planned = {spec.name: spec for spec in specs}
    with _swarm_errors("Listing the swarm's nodes"):
        nodes = cli.nodes.list()
    seen: set[str] = set()
    for node in nodes:
        hostname = node.attrs["Description"]["Hostname"]
        spec = planned.get(hostname)
        if spec is None:
            continue
        seen.add(hostname)
        node_spec = node.attrs["Spec"]
        labels = dict(node_spec.get("Labels") or {})
        wanted = {k: v for k, v in labels.items() if not k.startswith("farm.role.")}
        wanted.update({role_label(r): "true" for r in spec.roles if r in ROLE_LABELS})
        if wanted == labels:
            progress(f"{hostname}: roles already {', '.join(spec.roles)}")
            continue
        with _swarm_errors(f"Labelling {hostname}"):
            node.update({**node_spec, "Labels": wanted})
        progress(f"{hostname}: roles {', '.join(spec.roles)}")
    missing = sorted(set(planned) - seen)
    if missing:
        raise LocalNodeError(f"not in the swarm: {', '.join(missing)}", retryable=True)
