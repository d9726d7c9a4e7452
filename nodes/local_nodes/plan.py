"""What the local multi-node farm looks like, as plain values (no Docker calls).

Plan D1: N engine containers ``farm-node-1..N`` on the host bridge ``farm-nodes``
(``FARM_LOCAL_NODES_SUBNET``, default 10.213.0.0/24, clear of the farm's 10.201/16
and Docker's 172.17-31 pools) at fixed addresses from ``.11``. Each one's engine
answers on ``/run/wpfarm-nodes/<node>/docker.sock`` on the host (D2), its
``/var/lib/docker`` and Gluster bricks live on named volumes that outlive it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodes.local_nodes import LocalNodeError
from nodes.platform import ROLE_LABELS

NODE_PREFIX = "farm-node-"
NETWORK = "farm-nodes"
# Every container of the local farm carries it (value: the node name); teardown finds them by it.
NODE_LABEL = "farm.local-node"
ROLES_LABEL = "farm.local-node.roles"
DEFAULT_SUBNET = "10.213.0.0/24"
# node-1 is .11: .1 is the bridge's gateway, the rest below .11 stays free for the host side.
FIRST_HOST_OFFSET = 10
DEFAULT_RUN_DIR = "/run/wpfarm-nodes"
# Where a node's engine also listens, inside the node (the host's <run dir>/<node>).
API_DIR = "/farm-api"
# sockaddr_un.sun_path is 108 bytes, the terminating NUL included.
MAX_SOCKET_PATH = 107
# How many managers a bigger farm gets (Raft: 3 tolerate the loss of one).
MANAGERS = 3


@dataclass(frozen=True)
class NodeSpec:
    """One planned node: its index (1-based), Swarm role, farm roles and address."""

    index: int
    manager: bool
    roles: tuple[str, ...]
    address: str

    @property
    def name(self) -> str:
        return f"{NODE_PREFIX}{self.index}"

    @property
    def swarm_role(self) -> str:
        return "manager" if self.manager else "worker"

    @property
    def docker_volume(self) -> str:
        return self.volumes[0]

    @property
    def gluster_volume(self) -> str:
        return self.volumes[1]

    @property
    def volumes(self) -> tuple[str, str]:
        return node_volumes(self.name)

    @property
    def socket_dir(self) -> Path:
        return socket_dir(self.name)

    @property
    def docker_host(self) -> str:
        """The host's DOCKER_HOST form of this node's engine."""
        return f"unix://{socket_path(self.name)}"


def node_volumes(node: str) -> tuple[str, str]:
    """The named volumes of ``node`` (its /var/lib/docker, its Gluster bricks). Their
    names do not depend on the checkout, so a CI clone reuses the session's caches."""
    index = node.removeprefix(NODE_PREFIX)
    if not index.isdigit():
        raise LocalNodeError(f"{node!r} is not a node name ({NODE_PREFIX}<n>)")
    return f"wpfarm-node-{index}-docker", f"wpfarm-node-{index}-gluster"


def run_dir() -> Path:
    """FARM_LOCAL_NODES_RUN_DIR, else /run/wpfarm-nodes (root-only, gone at reboot)."""
    return Path(os.environ.get("FARM_LOCAL_NODES_RUN_DIR", "").strip() or DEFAULT_RUN_DIR)


def socket_dir(node: str) -> Path:
    return run_dir() / node


def socket_path(node: str) -> Path:
    path = socket_dir(node) / "docker.sock"
    if len(str(path).encode()) > MAX_SOCKET_PATH:
        raise LocalNodeError(
            f"the socket path {path} is longer than {MAX_SOCKET_PATH} bytes, which a unix "
            "socket cannot have; set FARM_LOCAL_NODES_RUN_DIR to a shorter folder"
        )
    return path


def subnet() -> ipaddress.IPv4Network:
    """FARM_LOCAL_NODES_SUBNET (an IPv4 network), failing loudly on anything else."""
    raw = os.environ.get("FARM_LOCAL_NODES_SUBNET", "").strip() or DEFAULT_SUBNET
    try:
        network = ipaddress.ip_network(raw, strict=True)
    except ValueError as exc:
        raise LocalNodeError(f"FARM_LOCAL_NODES_SUBNET {raw!r} is not a network: {exc}") from exc
    if not isinstance(network, ipaddress.IPv4Network):
        raise LocalNodeError(f"FARM_LOCAL_NODES_SUBNET {raw!r} must be an IPv4 network")
    if network.num_addresses < FIRST_HOST_OFFSET + 3:
        raise LocalNodeError(
            f"FARM_LOCAL_NODES_SUBNET {raw!r} is too small: nodes start at .{FIRST_HOST_OFFSET + 1}"
        )
    return network


def address(index: int) -> str:
    """node-``index``'s fixed address: the subnet's host .11 for node-1, .12 for node-2..."""
    if index < 1:
        raise LocalNodeError(f"node indexes start at 1, not {index}")
    network = subnet()
    host = network.network_address + FIRST_HOST_OFFSET + index
    if host >= network.broadcast_address:
        raise LocalNodeError(f"node {index} has no address left in {network}")
    return str(host)


def max_nodes() -> int:
    network = subnet()
    return network.num_addresses - FIRST_HOST_OFFSET - 2


def _ordered(roles: set[str]) -> tuple[str, ...]:
    return tuple(r for r in ROLE_LABELS if r in roles)


def plan_roles(n: int) -> list[NodeSpec]:
    """The nodes of an ``n``-node farm (plan D1).

    - n=1: one manager with every role;
    - n=2: node-1 manager (edge, db, worker), node-2 a worker;
    - n>=3: nodes 1-3 managers and all edge, node-1 also db, the rest workers; if
      fewer than 2 nodes are workers only, managers 2-3 also take ``worker``.

    So sites never share the db node once there are 3 nodes, and always have
    somewhere to go.
    """
    if n < 1:
        raise LocalNodeError(f"a farm has at least one node, not {n}")
    if n > max_nodes():
        raise LocalNodeError(f"{subnet()} has room for {max_nodes()} nodes, not {n}")
    if n == 1:
        return [NodeSpec(1, True, _ordered({"edge", "worker", "db"}), address(1))]
    if n == 2:
        return [
            NodeSpec(1, True, _ordered({"edge", "worker", "db"}), address(1)),
            NodeSpec(2, False, ("worker",), address(2)),
        ]
    workers_only = n - MANAGERS
    specs: list[NodeSpec] = []
    for index in range(1, n + 1):
        if index == 1:
            roles = {"edge", "db"}
        elif index <= MANAGERS:
            roles = {"edge", "worker"} if workers_only < 2 else {"edge"}
        else:
            roles = {"worker"}
        specs.append(NodeSpec(index, index <= MANAGERS, _ordered(roles), address(index)))
    return specs


def node_environment(spec: NodeSpec, *, fresh: bool, glusterd: bool) -> dict[str, str]:
    """What ``farm-node-init`` reads (the farm/node image's contract, nodes/images/build.py)."""
    return {
        "FARM_NODE_NAME": spec.name,
        "FARM_NODE_FRESH": "1" if fresh else "0",
        "FARM_NODE_GLUSTERD": "1" if glusterd else "0",
    }


def run_kwargs(
    spec: NodeSpec,
    *,
    image: str,
    fresh: bool = True,
    glusterd: bool = True,
    environment: Mapping[str, str] | None = None,
    extra_volumes: Mapping[str, Mapping[str, str]] | None = None,
    ports: Mapping[str, tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """The docker SDK ``containers.run(**kwargs)`` arguments of ``spec``'s engine.

    LOCAL-FARM-NOTES' flags: every capability but CAP_SYS_RESOURCE, which this
    kernel's bounding set lacks (so ``privileged`` would fail, and is never set);
    seccomp and AppArmor unconfined; the host's cgroup namespace with
    /sys/fs/cgroup writable; tmpfs /run and /tmp; /dev/fuse for the Gluster
    client; IP forwarding for the node's bridges. ``extra_volumes`` (SDK form,
    host path or volume name -> {"bind", "mode"}) adds the bind sources that later
    steps mount at the same path on every node. ``ports`` (SDK form, e.g.
    ``{"5000/tcp": ("127.0.0.1", 5000)}``) publishes node ports on the host.
    """
    volumes: dict[str, dict[str, str]] = {
        spec.docker_volume: {"bind": "/var/lib/docker", "mode": "rw"},
        spec.gluster_volume: {"bind": "/srv/gluster", "mode": "rw"},
        "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
        str(spec.socket_dir): {"bind": API_DIR, "mode": "rw"},
    }
    for source, target in (extra_volumes or {}).items():
        if source in volumes:
            raise LocalNodeError(f"{source} is already mounted into {spec.name}")
        volumes[source] = dict(target)
    env = node_environment(spec, fresh=fresh, glusterd=glusterd)
    env.update(environment or {})
    return {
        "image": image,
        "name": spec.name,
        "hostname": spec.name,
        "detach": True,
        "labels": {NODE_LABEL: spec.name, ROLES_LABEL: ",".join(spec.roles)},
        "environment": env,
        "privileged": False,
        "cap_add": ["ALL"],
        "cap_drop": ["SYS_RESOURCE"],
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        "cgroupns": "host",
        "tmpfs": {"/run": "", "/tmp": ""},  # noqa: S108 - the node's own /tmp, a fresh tmpfs
        "devices": ["/dev/fuse:/dev/fuse:rwm"],
        "sysctls": {"net.ipv4.ip_forward": "1"},
        "volumes": volumes,
        **({"ports": dict(ports)} if ports else {}),
        "network": NETWORK,
        "networking_config": {NETWORK: {"IPAMConfig": {"IPv4Address": spec.address}}},
    }
