"""The local multi-node farm's shared site files: GlusterFS in the node engines
(docs/plans/multi-node.md D4, C6), driven through ``docker exec`` into the node
containers with nodes/gluster.py's argv builders and parsers.

``ensure_gluster`` makes the peers, the ``farm-sites`` volume (replica 3 arbiter 1
on three nodes, replica 2 with a warning on two) and its FUSE mount at the same
absolute path on the host and on every node, and records the mount in each node's
kept Gluster volume so the node's init mounts it again after a restart, before
its engine starts. ``farm_mounts`` finds the host's mounts of any checkout's
local farm, which must be unmounted (lazily) before the nodes go.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import docker

from nodes import gluster
from nodes.local_nodes.plan import NodeSpec, subnet

Progress = Callable[[str], None]

# Read by the node image's init (nodes/images/builder/node/farm-node-init).
MOUNT_RECORD = "/srv/gluster/farm-mount.env"


def _exec_in(host: docker.DockerClient, node: str) -> gluster.ExecFn:
    container = host.containers.get(node)

    def run(argv: Sequence[str]) -> tuple[int | None, bytes | str]:
        result = container.exec_run(list(argv))
        output = result.output
        return result.exit_code, output if isinstance(output, bytes) else b""

    return run


def ensure_gluster(
    host: docker.DockerClient, specs: Sequence[NodeSpec], sites_root: str, progress: Progress
) -> list[str]:
    """Peers, the farm-sites volume and its mount on every node and on the host."""
    changes: list[str] = []
    if len(specs) < 2:
        progress("one node: the site files stay a local directory")
        return changes
    first = _exec_in(host, specs[0].name)
    peers = {
        p.hostname for p in gluster.parse_peer_status(gluster.run_in(first, gluster.peer_status()))
    }
    for spec in specs[1:]:
        if spec.address not in peers:
            _retry(first, gluster.peer_probe(spec.address))
            changes.append(f"gluster peer {spec.name}")
    data = specs[: min(3, len(specs))]
    for spec in data:
        _exec_in(host, spec.name)(["mkdir", "-p", gluster.BRICK_DIR, gluster.ARBITER_DIR])
    info = _volume(first)
    if info is None:
        bricks = gluster.plan_bricks([s.address for s in data])
        _retry(first, gluster.volume_create(gluster.VOLUME, bricks))
        warning = gluster.replica_warning(bricks)
        if warning:
            progress(f"warning: {warning}")
        for argv in gluster.default_options(gluster.VOLUME):
            gluster.run_in(first, argv)
        changes.append(f"gluster volume {gluster.VOLUME} ({', '.join(bricks)})")
        info = _volume(first)
    if info is not None and not info.started:
        _retry(first, gluster.volume_start(gluster.VOLUME))
        changes.append(f"started gluster volume {gluster.VOLUME}")
    server, backups = data[0].address, [s.address for s in data[1:]]
    record = (
        f"FARM_NODE_GLUSTER_VOLUME={server}:/{gluster.VOLUME}\n"
        f"FARM_NODE_GLUSTER_BACKUP_SERVERS={':'.join(backups)}\n"
        f"FARM_NODE_GLUSTER_MOUNT={sites_root}\n"
    )
    argv = gluster.mount_argv(server, gluster.VOLUME, sites_root, backups)
    for spec in specs:
        run = _exec_in(host, spec.name)
        run(["sh", "-c", f"cat > {MOUNT_RECORD} <<'EOF'\n{record}EOF"])
        if not mounted(run, sites_root):
            run(["mkdir", "-p", sites_root])
            gluster.run_in(run, argv)
            changes.append(f"{spec.name}: mounted {gluster.VOLUME} at {sites_root}")
    if not mounted(host_run, sites_root):
        Path(sites_root).mkdir(parents=True, exist_ok=True)
        gluster.run_in(host_run, argv)
        changes.append(f"host: mounted {gluster.VOLUME} at {sites_root}")
    return changes


def farm_mounts(mounts: str) -> list[str]:
    """The host's FUSE mounts of a local farm's Gluster volume (from /proc/self/mounts
    text): this checkout's and any other's, whose servers go when the nodes do."""
    ours = {str(a) for a in subnet().hosts()}
    targets = []
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3 or not fields[2].startswith("fuse.glusterfs"):
            continue
        server, _, volume = fields[0].partition(":")
        if server in ours and volume == f"/{gluster.VOLUME}":
            targets.append(fields[1].replace("\\040", " "))
    return targets


def host_run(argv: Sequence[str]) -> tuple[int | None, bytes | str]:
    done = subprocess.run(list(argv), capture_output=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


def mounted(run: gluster.ExecFn, path: str) -> bool:
    _code, output = run(["cat", "/proc/self/mounts"])
    text = _text(output)
    return any(line.split()[1:2] == [path] for line in text.splitlines() if line.strip())


def _volume(run: gluster.ExecFn) -> gluster.VolumeInfo | None:
    code, output = run(list(gluster.volume_info(gluster.VOLUME)))
    if code != 0:
        return None
    found = gluster.parse_volume_info(_text(output))
    return found[0] if found else None


def _text(output: bytes | str) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output


def _retry(
    run: gluster.ExecFn, argv: Sequence[str], *, attempts: int = 10, delay_s: float = 1.0
) -> str:
    """gluster.run_in, again while gluster says it is busy or a peer is still coming up."""
    for attempt in range(attempts):
        try:
            return gluster.run_in(run, argv)
        except gluster.GlusterError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            time.sleep(delay_s)
    raise AssertionError("unreachable")


__all__ = ["MOUNT_RECORD", "ensure_gluster", "farm_mounts", "host_run", "mounted"]
