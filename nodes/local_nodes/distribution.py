"""The farm's images on every node of the local multi-node farm (docs/plans/multi-node.md
D3, C7): the private registry as a global platform service, the images pushed to it
and pinned by digest, and each node's images pulled before it gets tasks.

1. ``farm/registry`` is side-loaded into every node (the registry's own image cannot
   come from the registry), and ``farm_registry`` runs one task per node with its port
   published in host mode, so ``127.0.0.1:5000`` on any node is that node's own task.
   Every task stores into the one ``wpfarm-registry-data`` volume, mounted into every
   node at the same path: what one node's registry took, every node's serves.
2. The host engine pushes the farm's images to node-1's registry, which node-1
   publishes on the host's ``127.0.0.1:5000``: the same name on the host and on the
   nodes. ``nodes.images.push_images`` checks each digest against the registry, and
   the role -> ``127.0.0.1:5000/farm/<role>@sha256:…`` mapping is written to
   FARM_IMAGE_MANIFEST_FILE, which ``FARM_IMAGES=registry`` reads.
3. Each node pulls the references its roles run (``images_for``), so failing over to
   it never waits on a pull.

Docker treats 127.0.0.0/8 registries as insecure by default, so no daemon setting or
certificate is needed for loopback (Engine API RegistryServiceConfig).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import docker
from django.conf import settings

from nodes import images, platform
from nodes.local_nodes import engines
from nodes.local_nodes.plan import NodeSpec
from nodes.registry import RegistryError, ping
from nodes.swarm import client
from nodes.swarm_services import apply_service
from nodes.swarm_tasks import wait_converged

Progress = Callable[[str], None]

REGISTRY_VOLUME = "wpfarm-registry-data"

# Which images a node can be asked to run, by its farm roles: Traefik on the edge; the
# singletons (pinned to the db node, nodes/platform.py) there; the sites on workers.
IMAGES_BY_ROLE: dict[str, tuple[str, ...]] = {
    "edge": ("traefik",),
    "db": ("mariadb", "redis", "prometheus", "alertmanager", "blackbox", "restic"),
    "worker": ("wordpress", "nginx", "redis", "restic"),
}


def images_for(spec: NodeSpec, refs: Mapping[str, str]) -> list[str]:
    """The image references ``spec`` needs, by its roles (``refs``: role -> reference)."""
    wanted = {role for farm_role in spec.roles for role in IMAGES_BY_ROLE.get(farm_role, ())}
    return sorted(refs[role] for role in wanted if role in refs)


def load_into_nodes(
    host: docker.DockerClient,
    clients: Mapping[str, docker.DockerClient],
    wanted: Mapping[str, Sequence[str]],
    progress: Progress,
) -> list[str]:
    """Side-load ``wanted`` (node -> local tags) from the host engine where missing
    (``nodes.images.side_load``), the nodes at the same time."""

    def load(node: str) -> list[str]:
        cli = clients[node]
        done = []
        with engines.engine_errors(f"Listing {node}'s images", engine=f"{node}'s engine"):
            have = {t for image in cli.images.list() for t in image.tags}
        for tag in wanted[node]:
            if tag in have:
                continue
            started = time.monotonic()
            images.side_load(host, cli, tag)
            progress(f"{node}: loaded {tag} in {time.monotonic() - started:.1f}s")
            done.append(f"{node}: image {tag}")
        return done

    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        return [line for lines in pool.map(load, list(wanted)) for line in lines]


def publish(
    host: docker.DockerClient,
    registry_image: str,
    local: Mapping[str, str],
    progress: Progress,
    *,
    wait_s: float = 120,
) -> dict[str, str]:
    """Run ``farm_registry`` (through the farm's client: call it with the farm's settings),
    wait until the host reaches it at FARM_REGISTRY, push ``local`` (role -> local tag)
    and write the manifest; returns role -> pinned reference."""
    cli = client()
    outcome = apply_service(cli, platform.registry_def(registry_image))
    if outcome != "unchanged":
        progress(f"{outcome} service farm_registry")
    wait_converged(cli, ["farm_registry"], timeout_s=wait_s, on_progress=progress)
    deadline = time.monotonic() + 30
    while True:
        try:
            ping(settings.FARM_REGISTRY)
            break
        except RegistryError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    started = time.monotonic()
    pinned = images.push_images(host, local, settings.FARM_REGISTRY, progress=progress)
    images.write_manifest(settings.FARM_IMAGE_MANIFEST_FILE, pinned)
    progress(f"pushed {len(pinned)} images in {time.monotonic() - started:.1f}s")
    return pinned


def pull_into_nodes(
    clients: Mapping[str, docker.DockerClient],
    specs: Sequence[NodeSpec],
    pinned: Mapping[str, str],
    progress: Progress,
) -> None:
    """Each node pulls, from its own registry task, the pinned references its roles run."""

    def pull(spec: NodeSpec) -> None:
        images.pre_pull(clients[spec.name], images_for(spec, pinned), progress=progress)

    with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
        list(pool.map(pull, specs))


__all__ = [
    "IMAGES_BY_ROLE",
    "REGISTRY_VOLUME",
    "images_for",
    "load_into_nodes",
    "publish",
    "pull_into_nodes",
]
