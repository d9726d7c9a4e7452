"""The node engine containers of the local farm, and clients for their engines.

The host engine (FARM_LOCAL_NODES_ENGINE, default its /var/run/docker.sock) runs
the ``farm/node`` containers; each node's own engine is reached on its socket
under /run/wpfarm-nodes/<node>/ (plan D2: no TCP, no TLS material, root-only).
This module builds its own ``docker.DockerClient``s: nodes.swarm_client's cached
client is for the farm's managers, not for one engine.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool

from farm.redaction import mask_swarm_secrets
from nodes.local_nodes import LocalNodeError
from nodes.local_nodes.plan import (
    NETWORK,
    NODE_LABEL,
    NodeSpec,
    node_volumes,
    run_kwargs,
    socket_path,
    subnet,
)

logger = logging.getLogger(__name__)

DEFAULT_HOST_ENGINE = "unix:///var/run/docker.sock"
# The farm/node image's docker.io 20.10: a fixed version, so that making a client
# does not ask an engine that may not be up yet.
NODE_API_VERSION = "1.41"
READY_TIMEOUT_S = 30.0
# How often the socket is looked for and pinged while an engine starts (a stat and
# one short request: cheap), and how often the container's state is read meanwhile.
POLL_S = 0.2
STATE_EVERY_S = 1.0

Progress = Callable[[str], None]


@contextmanager
def engine_errors(action: str, *, engine: str = "the host's Docker Engine") -> Iterator[None]:
    """Engine errors as LocalNodeError, with any Swarm token in their words masked. The
    original exception is not chained (``from None``): its text is unmasked."""
    try:
        yield
    except LocalNodeError:
        raise
    except docker.errors.APIError as exc:
        status = exc.status_code or 0
        raise LocalNodeError(
            f"{action}: {mask_swarm_secrets(str(exc))}", retryable=status >= 500
        ) from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise LocalNodeError(
            f"{action}: {engine} does not answer ({mask_swarm_secrets(str(exc))})",
            retryable=True,
        ) from None


def host_engine(timeout: int = 120) -> docker.DockerClient:
    """The engine that runs the node containers (never a node's own engine)."""
    base_url = os.environ.get("FARM_LOCAL_NODES_ENGINE", "").strip() or DEFAULT_HOST_ENGINE
    with engine_errors("Connecting to the host's Docker Engine"):
        return docker.DockerClient(base_url=base_url, timeout=timeout)


def engine_client(node: str, *, timeout: int = 60) -> docker.DockerClient:
    """A client for ``node``'s own engine; it does not connect until first used."""
    return docker.DockerClient(
        base_url=f"unix://{socket_path(node)}", version=NODE_API_VERSION, timeout=timeout
    )


def ensure_nodes_network(host: docker.DockerClient) -> Network:
    """The ``farm-nodes`` bridge on FARM_LOCAL_NODES_SUBNET; refuses one on another subnet."""
    wanted = str(subnet())
    with engine_errors(f"Looking up the {NETWORK} network"):
        found = host.networks.list(names=[NETWORK])
    for network in found:
        if network.name != NETWORK:
            continue
        configs = (network.attrs.get("IPAM") or {}).get("Config") or []
        subnets = {c.get("Subnet") for c in configs}
        if wanted not in subnets:
            raise LocalNodeError(
                f"the {NETWORK} network has subnet {', '.join(sorted(map(str, subnets)))}, "
                f"not {wanted} (FARM_LOCAL_NODES_SUBNET): remove it once its nodes are gone"
            )
        return network
    with engine_errors(f"Creating the {NETWORK} network"):
        return host.networks.create(
            NETWORK,
            driver="bridge",
            ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=wanted)]),
            labels={NODE_LABEL: "network"},
            options={"com.docker.network.bridge.name": NETWORK},
        )


def find_engine(host: docker.DockerClient, node: str) -> Container | None:
    with engine_errors(f"Looking up {node}"):
        try:
            container = host.containers.get(node)
        except docker.errors.NotFound:
            return None
    if (container.labels or {}).get(NODE_LABEL) != node:
        raise LocalNodeError(
            f"a container named {node} exists but is not a node of the local farm "
            f"(no {NODE_LABEL} label): remove or rename it"
        )
    return container


def start_engine(
    host: docker.DockerClient,
    spec: NodeSpec,
    *,
    image: str,
    fresh: bool = True,
    glusterd: bool = True,
    environment: Mapping[str, str] | None = None,
    extra_volumes: Mapping[str, Mapping[str, str]] | None = None,
    ports: Mapping[str, tuple[str, int]] | None = None,
    progress: Progress = logger.info,
) -> Container:
    """Start ``spec``'s engine container: created when missing, started or unpaused
    when it exists (keeping the environment it was created with, so a restarted node
    keeps its swarm identity). Does not wait for the engine: see wait_until_ready."""
    ensure_nodes_network(host)
    spec.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    container = find_engine(host, spec.name)
    with engine_errors(f"Starting {spec.name}"):
        if container is None:
            kwargs = run_kwargs(
                spec,
                image=image,
                fresh=fresh,
                glusterd=glusterd,
                environment=environment,
                extra_volumes=extra_volumes,
                ports=ports,
            )
            created: Container = host.containers.run(**kwargs)
            progress(f"{spec.name}: started a new engine container at {spec.address}")
            return created
        status = container.status
        if status == "running":
            progress(f"{spec.name}: already running")
        elif status == "paused":
            container.unpause()
            progress(f"{spec.name}: unpaused")
        else:
            container.start()
            progress(f"{spec.name}: started again (was {status})")
        container.reload()
        return container


def _existing(host: docker.DockerClient, node: str) -> Container:
    container = find_engine(host, node)
    if container is None:
        raise LocalNodeError(f"{node} has no engine container")
    return container


def kill_engine(host: docker.DockerClient, node: str) -> None:
    """SIGKILL: the node's processes die at once and its peers see connections end."""
    container = _existing(host, node)
    with engine_errors(f"Killing {node}"):
        container.reload()
        if container.status in ("running", "paused"):
            container.kill()


def pause_engine(host: docker.DockerClient, node: str) -> None:
    """Freeze the node (the cgroup freezer): silent, like a power loss or a partition."""
    container = _existing(host, node)
    with engine_errors(f"Pausing {node}"):
        container.reload()
        if container.status == "running":
            container.pause()


# A silent partition: the node's traffic on the farm-nodes bridge (its eth0) is dropped
# in its own network namespace, its tasks' included; nothing answers, nothing refuses.
PARTITION_RULES = (
    ("INPUT", "-i"),
    ("OUTPUT", "-o"),
    ("FORWARD", "-i"),
    ("FORWARD", "-o"),
)


def partition_engine(host: docker.DockerClient, node: str, *, heal: bool = False) -> None:
    """Cut ``node`` off the other nodes and the host without stopping anything (``heal``:
    let it talk again). ``docker pause`` cannot stand in here: with ``--cgroupns host`` a
    node's tasks live in cgroups beside its own, and runc's freezer refuses it."""
    container = _existing(host, node)
    action = "-D" if heal else "-I"
    for chain, direction in PARTITION_RULES:
        argv = ["iptables", "-w", action, chain, direction, "eth0", "-j", "DROP"]
        with engine_errors(f"{'Healing' if heal else 'Partitioning'} {node}"):
            result = container.exec_run(argv)
        if result.exit_code != 0 and not heal:
            output = result.output if isinstance(result.output, bytes) else b""
            said = output.decode(errors="replace").strip()
            raise LocalNodeError(f"Partitioning {node}: {' '.join(argv)} failed: {said}")


def unpause_engine(host: docker.DockerClient, node: str) -> None:
    container = _existing(host, node)
    with engine_errors(f"Unpausing {node}"):
        container.reload()
        if container.status == "paused":
            container.unpause()


def remove_engine(host: docker.DockerClient, node: str, *, volumes: bool = False) -> None:
    """Remove the node's container (and, with ``volumes``, its engine data and bricks).

    The named volumes are kept by default: the next container on them starts with
    FARM_NODE_FRESH=1 and keeps its image cache."""
    container = find_engine(host, node)
    if container is not None:
        with engine_errors(f"Removing {node}"):
            container.remove(force=True)
    socket_path(node).unlink(missing_ok=True)
    if not volumes:
        return
    for name in node_volumes(node):
        with engine_errors(f"Removing {node}'s volume {name}"), suppress(docker.errors.NotFound):
            host.volumes.get(name).remove(force=True)


def wait_until_ready(
    node: str,
    *,
    host: docker.DockerClient | None = None,
    timeout_s: float = READY_TIMEOUT_S,
    poll_s: float = POLL_S,
) -> docker.DockerClient:
    """A client for ``node``'s engine once it answers ``/_ping``.

    Looks for the socket and pings every ``poll_s``; with ``host``, also reads the
    node container's state every second and fails at once, with its last log lines,
    if it stopped. LocalNodeError (retryable) after ``timeout_s``, with the last error.
    """
    path = socket_path(node)
    client = engine_client(node, timeout=max(1, int(poll_s * 10)))
    deadline = time.monotonic() + timeout_s
    next_state = time.monotonic()
    last = "its socket did not appear"
    while True:
        if os.path.exists(path):
            try:
                if client.ping():
                    client.close()
                    return engine_client(node)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                last = f"ping failed: {exc}"
        if host is not None and time.monotonic() >= next_state:
            _fail_if_stopped(host, node)
            next_state = time.monotonic() + STATE_EVERY_S
        if time.monotonic() >= deadline:
            client.close()
            raise LocalNodeError(
                f"{node}'s engine did not answer on {path} within {timeout_s:.0f}s ({last})",
                retryable=True,
            )
        time.sleep(poll_s)


def _fail_if_stopped(host: docker.DockerClient, node: str) -> None:
    container = _existing(host, node)
    with engine_errors(f"Reading {node}'s state"):
        container.reload()
        if container.status in ("running", "created", "restarting"):
            return
        code = (container.attrs.get("State") or {}).get("ExitCode")
        tail = container.logs(tail=20).decode(errors="replace").strip()
    raise LocalNodeError(
        f"{node}'s engine container is {container.status} (exit code {code}) instead of "
        f"starting; its last words:\n{mask_swarm_secrets(tail)}"
    )
