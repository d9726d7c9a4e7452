"""The local multi-node farm: ``manage.py farm_up --nodes N`` and ``farm_down --nodes``
(docs/plans/multi-node.md C8).

N engine containers (nodes/local_nodes) form one Swarm, share the site files over
GlusterFS, get the farm's images, and then run the same platform as the
single-node farm (nodes/bootstrap.farm_up), reached through their own sockets
with client failover. In order, each step idempotent:

1. the node image and the farm's images on the host engine;
2. the engines (``farm-node-1..N`` on the ``farm-nodes`` bridge), each with the
   host directories the platform binds mounted at the same path;
3. the Swarm: node-1 initialises it, the others join (3 managers when N >= 3);
   tuned (FARM_SWARM_HEARTBEAT_S) and labelled with the planned roles;
4. GlusterFS: peers, the ``farm-sites`` volume (replica 3 arbiter 1, or 2), and
   its FUSE mount at the same absolute path on the host and on every node;
5. the images on every node: the private registry (a global service), the images
   pushed to it and pinned by digest (FARM_IMAGES=registry), pulled by each node;
6. the platform, with the settings of ``farm_settings`` (written to
   ``<FARM_VAR_DIR>/farm-nodes/farm.env`` for the panel's other processes).
7. with ``--with-panel``, the panel itself as a stack of the farm (nodes/panel_stack.py:
   its database, migrate from the host, secrets, services, route), its image built and
   pushed with the others in steps 1 and 5.

The multi-node farm keeps its own data under ``<FARM_VAR_DIR>/farm-nodes/``, so it
can run beside the single-node farm of the same checkout without sharing a
MariaDB datadir or a site directory with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from django.conf import settings
from django.test.utils import override_settings

from nodes import images, platform
from nodes.local_nodes import LocalNodeError, distribution, engines, ipsec, shared_files
from nodes.local_nodes import swarm as node_swarm
from nodes.local_nodes.plan import NODE_LABEL, NODE_PREFIX, NodeSpec, plan_roles, subnet
from nodes.swarm_client import reset_client_cache

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

ENGINE_READY_S = 60.0


def farm_dir() -> Path:
    return Path(settings.VAR_DIR) / "farm-nodes"


def env_file() -> Path:
    return farm_dir() / "farm.env"


def data_paths() -> dict[str, Path]:
    """The multi-node farm's own bind sources and site root, apart from the single-node farm's."""
    root = farm_dir()
    return {
        "FARM_MARIADB_DATA": root / "mariadb",
        "FARM_PROMETHEUS_TARGETS_DIR": root / "prometheus" / "targets",
        "FARM_SITES_ROOT": root / "sites",
    }


def farm_settings(specs: Sequence[NodeSpec], *, encrypted: bool) -> dict[str, Any]:
    """The settings under which the panel drives the multi-node farm: the managers'
    sockets (node-1 first), the singletons' published ports on the db node, the edge
    on node-1, and the farm's own data paths."""
    managers = [s for s in specs if s.manager]
    db = next((s for s in specs if "db" in s.roles), specs[0])
    edge = next((s for s in specs if "edge" in s.roles), specs[0])
    gateway = str(next(subnet().hosts()))
    values: dict[str, Any] = {
        "FARM_DOCKER_HOSTS": [s.docker_host for s in managers],
        "FARM_OVERLAY_ENCRYPTION": "on" if encrypted else "off",
        "FARM_MARIADB_HOST": db.address,
        "FARM_ROUTES_HOST": db.address,
        "FARM_SITE_DB_HOST": f"{db.address}:{settings.FARM_MARIADB_PORT}",
        "FARM_PROMETHEUS_URL": f"http://{db.address}:{settings.FARM_PROMETHEUS_PORT}",
        "FARM_ALERTMANAGER_URL": f"http://{db.address}:{settings.FARM_ALERTMANAGER_PORT}",
        "FARM_EDGE_URL": f"http://{edge.address}:{settings.FARM_HTTP_PORT}",
        # Tasks reach the host (the panel's webhook) through the nodes' bridge.
        "FARM_PANEL_URL_FROM_SWARM": f"http://{gateway}:8000",
    }
    paths = data_paths()
    # The types farm/settings.py gives them: the datadir a string, the others paths.
    values.update(paths, FARM_MARIADB_DATA=str(paths["FARM_MARIADB_DATA"]))
    return values


def panel_settings() -> dict[str, str]:
    """What a panel started on the multi-node farm also needs in farm.env: a database of
    its own (not the single-node farm's), like the data paths."""
    return {"DATABASE_URL": f"sqlite:///{farm_dir() / 'panel.sqlite3'}"}


def env_lines(values: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, value in sorted(values.items()):
        text = ",".join(value) if isinstance(value, list) else str(value)
        lines.append(f"{key}={text}")
    return lines


def write_env_file(values: Mapping[str, Any]) -> Path:
    path = env_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# The local multi-node farm (manage.py farm_up --nodes N): source it, e.g.\n"
        "#   set -a; . var/farm-nodes/farm.env; set +a\n" + "\n".join(env_lines(values)) + "\n"
    )
    tmp.replace(path)
    return path


@contextmanager
def driving(values: Mapping[str, Any]) -> Iterator[None]:
    """Settings pointing at the multi-node farm, with a fresh Docker client on the way
    in and out."""
    reset_client_cache()
    try:
        with override_settings(**values):
            reset_client_cache()
            yield
    finally:
        reset_client_cache()


@dataclass
class NodesReport:
    specs: list[NodeSpec] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    encrypted: bool = False
    encryption_reason: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


def up(
    n: int,
    *,
    heartbeat_s: float | None = None,
    wait_s: float = 300,
    with_panel: bool = False,
    progress: Progress = print,
) -> NodesReport:
    """Bring the local multi-node farm up (or repair it); see the module's docstring.
    ``with_panel``: the panel's image too, and then the panel as a stack (step 7)."""
    from nodes import bootstrap, panel_stack  # under their line budgets, apart

    if n < 1:
        raise LocalNodeError(f"a farm needs at least one node, not {n}")
    report = NodesReport(specs=plan_roles(n))
    started = time.monotonic()
    host = engines.host_engine(timeout=900)
    paths = data_paths()
    for path in paths.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    built = images.build_images(host, cache_dir=settings.FARM_IMAGE_CACHE_DIR, progress=progress)
    panel = ["panel"] if with_panel else []
    own = images.build_images(
        host,
        cache_dir=settings.FARM_IMAGE_CACHE_DIR,
        roles=["node", "registry", *panel],
        progress=progress,
    ).tags()
    report.timings["images"] = time.monotonic() - started

    step = time.monotonic()
    targets, datadir = str(paths["FARM_PROMETHEUS_TARGETS_DIR"]), str(paths["FARM_MARIADB_DATA"])
    binds = {
        # rw: the panel's workers (--with-panel) write the sites' target files there.
        targets: {"bind": targets, "mode": "rw"},
        distribution.REGISTRY_VOLUME: {"bind": platform.REGISTRY_STORAGE_DIR, "mode": "rw"},
    }
    wanted = {}
    for spec in report.specs:
        extra = dict(binds)
        if "db" in spec.roles:
            extra[datadir] = {"bind": datadir, "mode": "rw"}
        wanted[spec.name] = extra
    if any(_binds_differ(host, name, extra) for name, extra in wanted.items()):
        # Engines made for another FARM_VAR_DIR: they cannot be given new mounts, so the
        # farm starts over on the kept volumes (same images, same Gluster peers and bricks).
        progress("the nodes' bind mounts are another var dir's (or older): making them again")
        report.changes += down(progress=progress)
    for spec in report.specs:
        extra = wanted[spec.name]
        engines.start_engine(
            host,
            spec,
            image=own["node"],
            fresh=True,
            glusterd=True,
            extra_volumes=extra,
            # The host pushes to node-1's registry under the name the nodes pull by.
            ports=registry_port() if spec.index == 1 else None,
            progress=progress,
        )
    clients = {
        s.name: engines.wait_until_ready(s.name, host=host, timeout_s=ENGINE_READY_S)
        for s in report.specs
    }
    report.timings["engines"] = time.monotonic() - step

    step = time.monotonic()
    node_swarm.form_swarm(report.specs, clients, progress=progress)
    leader = clients[report.specs[0].name]
    node_swarm.tune_swarm(
        leader, heartbeat_s=heartbeat_s or settings.FARM_SWARM_HEARTBEAT_S, progress=progress
    )
    node_swarm.label_roles(leader, report.specs, progress=progress)
    report.timings["swarm"] = time.monotonic() - step

    step = time.monotonic()
    report.changes += shared_files.ensure_gluster(
        host, report.specs, str(paths["FARM_SITES_ROOT"]), progress
    )
    report.timings["gluster"] = time.monotonic() - step

    report.encrypted, report.encryption_reason = ipsec.ipsec_supported(
        report.specs[0].name, host=host
    )
    if not report.encrypted and settings.FARM_OVERLAY_ENCRYPTION == "on":
        raise LocalNodeError(
            f"FARM_OVERLAY_ENCRYPTION=on, but this kernel cannot encrypt overlays between "
            f"the nodes ({report.encryption_reason})"
        )
    report.settings = farm_settings(report.specs, encrypted=report.encrypted)

    step = time.monotonic()
    with driving(report.settings):
        report.changes += distribution.load_into_nodes(
            host, clients, {s.name: [own["registry"]] for s in report.specs}, progress
        )
        local = {**built.tags(), **{role: own[role] for role in panel}}
        pinned = distribution.publish(host, own["registry"], local, progress)
        distribution.pull_into_nodes(clients, report.specs, pinned, progress)
    report.settings.update(
        FARM_IMAGES="registry", FARM_IMAGE_MANIFEST_FILE=settings.FARM_IMAGE_MANIFEST_FILE
    )
    write_env_file({**report.settings, **panel_settings()})
    report.timings["registry"] = time.monotonic() - step

    step = time.monotonic()
    with driving(report.settings):
        platform_report = bootstrap.farm_up(build=False, wait_s=wait_s, progress=progress)
    report.changes += platform_report.changes
    report.timings["platform"] = time.monotonic() - step
    if with_panel:
        with driving(report.settings):
            stack = panel_stack.ensure_panel(wait_s=wait_s, progress=progress, pull_into=clients)
        report.changes += stack.changes
        report.timings.update(stack.timings)
    for cli in clients.values():
        cli.close()
    report.timings["total"] = time.monotonic() - started
    return report


def _binds_differ(host: docker.DockerClient, node: str, extra: Mapping[str, Any]) -> bool:
    """Whether ``node``'s container exists without the host directories ``extra`` names,
    or with one of them read-only that is wanted writable (or the reverse)."""
    container = engines.find_engine(host, node)
    if container is None:
        return False
    mounts = container.attrs.get("Mounts") or []
    mounted = {
        m.get("Name") if m.get("Type") == "volume" else m.get("Source"): bool(m.get("RW", True))
        for m in mounts
    }
    published = (container.attrs.get("HostConfig") or {}).get("PortBindings") or {}
    wants_port = container.name == f"{NODE_PREFIX}1"
    differ = any(mounted.get(src) != (b.get("mode") != "ro") for src, b in extra.items())
    return differ or (wants_port and not published)


def registry_port() -> dict[str, tuple[str, int]]:
    """node-1's registry port on the host's loopback, where FARM_REGISTRY points."""
    host, _, port = settings.FARM_REGISTRY.partition(":")
    return {f"{platform.REGISTRY_PORT}/tcp": (host, int(port or 80))}


def down(*, purge: bool = False, progress: Progress = print) -> list[str]:
    """Remove the node containers and the nodes' bridge; the host's Gluster mount is
    unmounted lazily first (R11: a mount whose servers are gone hangs every stat).
    The nodes' volumes (engine data, bricks) are kept unless ``purge``."""
    changes = []
    for target in shared_files.farm_mounts(Path("/proc/self/mounts").read_text()):
        shared_files.host_run(["umount", "-l", target])
        changes.append(f"host: unmounted {target}")
    host = engines.host_engine(timeout=300)
    with engines.engine_errors("Listing the local farm's nodes"):
        found = host.containers.list(all=True, filters={"label": NODE_LABEL})
    for container in found:
        node = str((container.labels or {}).get(NODE_LABEL) or container.name)
        engines.remove_engine(host, node, volumes=purge)
        changes.append(f"removed {node}" + (" and its volumes" if purge else ""))
    with engines.engine_errors("Removing the nodes' network"):
        for network in host.networks.list(filters={"label": NODE_LABEL}):
            network.remove()
            changes.append(f"removed network {network.name}")
    for line in changes:
        progress(line)
    return changes


__all__ = ["NodesReport", "data_paths", "down", "env_file", "farm_settings", "up"]
