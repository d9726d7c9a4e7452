"""Leave a Docker Engine clean for the next farm: a new, empty swarm.

The engine creates each overlay network's VXLAN interface (``vx-<vni>-<net>``)
in the host's network namespace and moves it into the network's sandbox at
once. ``docker swarm leave --force`` while tasks still run can strand such
interfaces (in the host namespace, or in a sandbox under
``/var/run/docker/netns`` the engine no longer knows). The next swarm hands out
the same VXLAN ids, and every task on those networks is then rejected with
"subnet sandbox join failed for ...: error creating vxlan interface: file
exists". So the reset removes every service first, waits for their containers
to be gone, removes the swarm's networks, and only then leaves; on a local
engine it deletes the stranded VXLAN interfaces; then it starts a new swarm.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
from django.conf import settings

from nodes.swarm_client import (
    SwarmError,
    client,
    remove_when_released,
    translate_errors,
    uses_local_engine,
)
from nodes.swarm_tasks import wait_containers_gone

DOCKER_NETNS_DIR = Path("/var/run/docker/netns")
# The engine's own names for overlay sandboxes: "<n>-<network id prefix>" per overlay
# network, "lb_<id prefix>" for its load balancer, "ingress_sbox" for the ingress.
_OVERLAY_SANDBOX = re.compile(r"^(?:[0-9]+-[0-9a-z]{10}|lb_[0-9a-z]{9}|ingress_sbox)$")
_LINK_NAME = re.compile(r"^[0-9]+: ([A-Za-z0-9_.-]+)[@:]")
_DOCKER_VXLAN = re.compile(r"^vx-[0-9a-f]{6}-")

Progress = Callable[[str], None]


def reset_engine(*, progress: Progress, new_swarm: bool = True) -> list[str]:
    """Remove every service and swarm network, leave the swarm, delete stale VXLAN
    interfaces (local engine only), and start a new swarm. Returns what it did."""
    cli = client()
    done: list[str] = []
    with translate_errors("Reading the Swarm state"):
        swarm = cli.info().get("Swarm", {})
    state = swarm.get("LocalNodeState", "inactive")
    if state == "active" and swarm.get("ControlAvailable"):
        done += _empty_swarm(cli, progress)
    if state != "inactive":
        with translate_errors("Leaving the swarm"):
            cli.swarm.leave(force=True)
        done.append("left the swarm")
    done += clear_stale_overlay_interfaces(progress)
    done += delete_orphaned_vxlan_links(progress)
    if new_swarm:
        with translate_errors("Initialising a new swarm"):
            cli.swarm.init(advertise_addr=settings.FARM_SWARM_ADVERTISE_ADDR)
        done.append(f"initialised a new swarm ({settings.FARM_SWARM_ADVERTISE_ADDR})")
    return done


def _empty_swarm(cli: docker.DockerClient, progress: Progress) -> list[str]:
    done: list[str] = []
    with translate_errors("Listing services"):
        services = cli.services.list()
    for svc in services:
        with translate_errors(f"Removing service {svc.name}"):
            try:
                svc.remove()
            except docker.errors.NotFound:
                continue
        done.append(f"removed service {svc.name}")
    if services:
        progress(f"waiting for the containers of {len(services)} services to stop")
        if not wait_containers_gone(cli, {s.name for s in services}, timeout_s=180):
            raise SwarmError(
                "Containers of the removed services are still running after 180 s; "
                "the swarm was not left (leaving now would strand their networks).",
                retryable=True,
            )
    with translate_errors("Listing networks"):
        networks = [
            n
            for n in cli.networks.list(filters={"driver": "overlay"})
            if n.attrs.get("Scope") == "swarm" and n.name != "ingress"
        ]
    for net in networks:
        # A network is removable once the engine has detached the last task.
        remove_when_released(net.remove, f"network {net.name}", attempts=30)
        done.append(f"removed network {net.name}")
    return done


def delete_orphaned_vxlan_links(progress: Progress) -> list[str]:
    """Delete the engine's VXLAN interfaces left in the host's network namespace.

    A ``vx-...`` interface belongs in its network's sandbox; one in the host
    namespace is an orphan (the engine moves each there the moment it makes it),
    and it blocks every network that is given its VXLAN id. Local engine only."""
    if not uses_local_engine():
        return []
    done: list[str] = []
    for link in _vxlan_links(None):
        if not _DOCKER_VXLAN.match(link):
            continue
        if _ip(None, ["link", "delete", link]) is not None:
            done.append(f"deleted orphaned VXLAN interface {link}")
        else:
            progress(f"could not delete the orphaned VXLAN interface {link}")
    return done


def clear_stale_overlay_interfaces(
    progress: Progress, netns_dir: Path = DOCKER_NETNS_DIR
) -> list[str]:
    """Delete the VXLAN interfaces in overlay sandboxes the engine left behind.

    Only for an engine on this machine that is in no swarm (every overlay sandbox
    is then stale), and only when we may look (root, the directory exists)."""
    if not uses_local_engine() or not netns_dir.is_dir():
        return []
    with translate_errors("Reading the Swarm state"):
        if client().info().get("Swarm", {}).get("LocalNodeState") != "inactive":
            return []  # in a swarm, these namespaces may be in use
    done: list[str] = []
    for sandbox in sorted(netns_dir.iterdir()):
        if not _OVERLAY_SANDBOX.match(sandbox.name):
            continue
        for link in _vxlan_links(sandbox):
            if _ip(sandbox, ["link", "delete", link]) is not None:
                done.append(f"deleted stale VXLAN interface {link} ({sandbox.name})")
            else:
                progress(f"could not delete {link} in {sandbox.name}")
    return done


def _ip(netns: Path | None, args: list[str]) -> str | None:
    """``ip ARGS`` in the host's namespace or in ``netns``; its output, None on failure."""
    argv = ["ip", *args] if netns is None else ["nsenter", f"--net={netns}", "ip", *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None  # no iproute2 or util-linux here, or a namespace we may not enter
    return result.stdout if result.returncode == 0 else None


def _vxlan_links(netns: Path | None) -> list[str]:
    output = _ip(netns, ["-o", "link", "show", "type", "vxlan"]) or ""
    links = []
    for line in output.splitlines():
        match = _LINK_NAME.match(line)
        if match:
            links.append(match.group(1))
    return links
