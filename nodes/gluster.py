"""GlusterFS, the farm's shared site files across nodes (docs/plans/multi-node.md D4).

Pure: argv lists for ``gluster --mode=script`` and for the FUSE mount, parsers for
``gluster volume info`` and ``gluster peer status``, and ``run_in``, which runs an
argv through an injected exec function (``docker exec`` into a local node later, a
subprocess on a real host) and turns a non-zero exit into ``GlusterError`` with
gluster's own words. Nothing here talks to Docker or starts a process itself.

Volume ``farm-sites``: ``replica 3 arbiter 1`` on three nodes (data bricks on the
first two, the arbiter on the third), because plain replica 2 with quorum ``auto``
stops writes when the first brick is lost. Two nodes get replica 2 with a warning;
one node gets no volume (the bind fallback, ``FARM_SHARED_FILES=bind``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from farm.errors import FarmError

GLUSTER = ("gluster", "--mode=script")
VOLUME = "farm-sites"
BRICK_DIR = "/srv/gluster/brick"
ARBITER_DIR = "/srv/gluster/arbiter"
# 5 s instead of gluster's 42 s: a paused node would freeze every FUSE client for the
# whole timeout. Red Hat warns about false disconnects at low values; the benchmark measures it.
DEFAULT_OPTIONS: tuple[tuple[str, str], ...] = (("network.ping-timeout", "5"),)
REPLICA_2_WARNING = (
    "replica 2 without an arbiter: with quorum 'auto' the first brick counts as one plus "
    "epsilon, so losing the first node stops writes, and a network split can leave "
    "split-brain files; add a third node for replica 3 arbiter 1"
)
# gluster's words for a failure that can pass by itself (glusterd busy or a peer still coming up).
RETRYABLE_WORDS = (
    "Another transaction is in progress",
    "Transport endpoint is not connected",
    "is not in 'Peer in Cluster' state",
    "Connection failed. Please check if gluster daemon is operational",
)

_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_OPTION_KEY = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
_OPTION_VALUE = re.compile(r"^[A-Za-z0-9_.:/,*-]{1,255}$")
_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+/?$")

# Runs an argv where gluster lives; returns (exit code, stdout and stderr together).
ExecFn = Callable[[Sequence[str]], tuple[int | None, bytes | str]]


class GlusterError(FarmError):
    """A gluster command failed, or its argv or output is not what the farm expects."""


def _check_volume(name: str) -> str:
    if not _VOLUME_NAME.match(name):
        raise GlusterError(f"{name!r} is not a Gluster volume name (letters, digits, _ and -)")
    return name


def _check_host(host: str) -> str:
    if not _HOST.match(host) or ".." in host:
        raise GlusterError(f"{host!r} is not a host name or IPv4 address")
    return host


def _check_path(path: str, what: str) -> str:
    if not _PATH.match(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
        raise GlusterError(f"{what} {path!r} must be an absolute path without . or .. parts")
    return path


def brick(host: str, path: str) -> str:
    """``host:/path``, the form gluster names a brick by."""
    return f"{_check_host(host)}:{_check_path(path, 'the brick path')}"


def plan_bricks(hosts: Sequence[str]) -> list[str]:
    """The bricks of ``farm-sites`` on the first three of ``hosts`` (D4): data bricks on
    the first two, the arbiter on the third; two hosts give two data bricks."""
    if len(hosts) < 2:
        raise GlusterError(
            f"a replicated Gluster volume needs at least 2 nodes, not {len(hosts)}; "
            "one node shares its files by a bind mount (FARM_SHARED_FILES=bind)"
        )
    bricks = [brick(host, BRICK_DIR) for host in hosts[:2]]
    if len(hosts) >= 3:
        bricks.append(brick(hosts[2], ARBITER_DIR))
    return bricks


def _check_bricks(bricks: Sequence[str]) -> list[str]:
    checked = []
    for item in bricks:
        host, sep, path = item.partition(":")
        if not sep:
            raise GlusterError(f"{item!r} is not a brick (host:/path)")
        checked.append(brick(host, path))
    if len(set(checked)) != len(checked):
        raise GlusterError(f"the bricks {', '.join(checked)} name one brick twice")
    return checked


def peer_probe(host: str) -> list[str]:
    return [*GLUSTER, "peer", "probe", _check_host(host)]


def peer_status() -> list[str]:
    return [*GLUSTER, "peer", "status"]


def volume_create(name: str, bricks: Sequence[str], *, arbiter: bool | None = None) -> list[str]:
    """``volume create`` with ``force`` (the bricks are directories on the nodes' own
    filesystem, which gluster refuses without it).

    Three bricks: ``replica 3 arbiter 1`` (``arbiter=False`` for plain replica 3).
    Two bricks: ``replica 2`` (see ``replica_warning``); an arbiter needs a third.
    """
    checked = _check_bricks(bricks)
    if len(checked) < 2:
        raise GlusterError(
            f"a replicated Gluster volume needs 2 or 3 bricks, not {len(checked)}: "
            "with one node, share the site files by a bind mount (FARM_SHARED_FILES=bind)"
        )
    if len(checked) > 3:
        raise GlusterError(
            f"farm-sites has 3 bricks at most (2 data, 1 arbiter), not {len(checked)}"
        )
    if arbiter is None:
        arbiter = len(checked) == 3
    if arbiter and len(checked) != 3:
        raise GlusterError("an arbiter volume needs 3 bricks: two data bricks and the arbiter")
    layout = ["replica", str(len(checked))] + (["arbiter", "1"] if arbiter else [])
    return [*GLUSTER, "volume", "create", _check_volume(name), *layout, *checked, "force"]


def replica_warning(bricks: Sequence[str]) -> str | None:
    """What to tell the operator about the volume ``volume_create`` makes, or None."""
    if len(bricks) == 2:
        return REPLICA_2_WARNING
    return None


def volume_set(name: str, key: str, value: str) -> list[str]:
    if not _OPTION_KEY.match(key):
        raise GlusterError(f"{key!r} is not a Gluster option name (like network.ping-timeout)")
    if not _OPTION_VALUE.match(value):
        raise GlusterError(f"{value!r} is not a value this farm sets on a Gluster option")
    return [*GLUSTER, "volume", "set", _check_volume(name), key, value]


def default_options(name: str) -> list[list[str]]:
    """The ``volume set`` argvs of DEFAULT_OPTIONS, run after create and before start."""
    return [volume_set(name, key, value) for key, value in DEFAULT_OPTIONS]


def volume_start(name: str) -> list[str]:
    return [*GLUSTER, "volume", "start", _check_volume(name)]


def volume_info(name: str) -> list[str]:
    return [*GLUSTER, "volume", "info", _check_volume(name)]


def mount_argv(server: str, volume: str, target: str, backup_servers: Iterable[str]) -> list[str]:
    """The FUSE mount of ``server:/volume`` at ``target``. ``backup-volfile-servers``
    lets the mount start while ``server`` is down; once mounted, the client talks to
    every brick itself."""
    server = _check_host(server)
    backups = [_check_host(host) for host in backup_servers]
    if server in backups or len(set(backups)) != len(backups):
        raise GlusterError(f"the backup volfile servers {backups} repeat a server")
    argv = ["mount", "-t", "glusterfs"]
    if backups:
        argv += ["-o", f"backup-volfile-servers={':'.join(backups)}"]
    return [*argv, f"{server}:/{_check_volume(volume)}", _check_path(target, "the mount point")]


@dataclass(frozen=True)
class Brick:
    host: str
    path: str
    arbiter: bool = False


@dataclass(frozen=True)
class VolumeInfo:
    """One volume of ``gluster volume info``."""

    name: str
    type: str
    status: str
    bricks: tuple[Brick, ...]
    options: dict[str, str] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        return self.status == "Started"

    @property
    def arbiter_count(self) -> int:
        return sum(1 for b in self.bricks if b.arbiter)


@dataclass(frozen=True)
class Peer:
    """One peer of ``gluster peer status`` (the node asked is not listed)."""

    hostname: str
    uuid: str
    state: str

    @property
    def in_cluster(self) -> bool:
        return self.state.startswith("Peer in Cluster")

    @property
    def connected(self) -> bool:
        return self.state.endswith("(Connected)")


def _field(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip(), value.strip()


def _parse_brick(value: str) -> Brick:
    arbiter = value.endswith("(arbiter)")
    value = value.removesuffix("(arbiter)").strip()
    host, sep, path = value.partition(":")
    if not sep:
        raise GlusterError(f"gluster volume info names a brick {value!r} without host:/path")
    return Brick(host.strip(), path.strip(), arbiter)


def parse_volume_info(text: str) -> list[VolumeInfo]:
    """The volumes in ``gluster volume info`` output ([] for "No volumes present")."""
    volumes: list[VolumeInfo] = []
    current: dict[str, str] = {}
    bricks: list[Brick] = []
    options: dict[str, str] = {}
    section = ""

    def flush() -> None:
        if not current:
            return
        missing = [k for k in ("Volume Name", "Type", "Status") if k not in current]
        if missing:
            raise GlusterError(f"gluster volume info has no {', '.join(missing)} line")
        volumes.append(
            VolumeInfo(
                current["Volume Name"], current["Type"], current["Status"], tuple(bricks), options
            )
        )

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        key, value = _field(line)
        if key == "Volume Name":
            flush()
            current, bricks, options, section = {key: value}, [], {}, ""
        elif not current:
            continue  # "No volumes present", or words before the first volume
        elif key in ("Bricks", "Options Reconfigured") and not value:
            section = key
        elif section == "Bricks" and re.fullmatch(r"Brick\d+", key):
            bricks.append(_parse_brick(value))
        elif section == "Options Reconfigured" and _OPTION_KEY.match(key):
            options[key] = value
        else:
            section = ""
            current[key] = value
    flush()
    return volumes


def parse_peer_status(text: str) -> list[Peer]:
    """The peers in ``gluster peer status`` output; "Other names:" lines are skipped."""
    peers: list[Peer] = []
    entry: dict[str, str] = {}

    def flush() -> None:
        if entry:
            if "Uuid" not in entry or "State" not in entry:
                name = entry.get("Hostname")
                raise GlusterError(f"gluster peer status lists {name} without Uuid or State")
            peers.append(Peer(entry["Hostname"], entry["Uuid"], entry["State"]))

    for raw in text.splitlines():
        key, value = _field(raw.strip())
        if key == "Hostname":
            flush()
            entry = {key: value}
        elif entry and key in ("Uuid", "State"):
            entry[key] = value
    flush()
    return peers


def run_in(exec_fn: ExecFn, argv: Sequence[str]) -> str:
    """Run ``argv`` through ``exec_fn`` and return its output; a non-zero exit raises
    GlusterError quoting gluster, retryable when its words say glusterd was busy or a
    peer not yet connected."""
    code, output = exec_fn(list(argv))
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    text = text.strip()
    if code == 0:
        return text
    command = " ".join(a for a in argv if a != "--mode=script")
    said = text or "no output"
    raise GlusterError(
        f"{command} failed (exit {code}): {said}",
        retryable=any(words in text for words in RETRYABLE_WORDS),
    )


__all__ = [
    "DEFAULT_OPTIONS",
    "VOLUME",
    "Brick",
    "ExecFn",
    "GlusterError",
    "Peer",
    "VolumeInfo",
    "default_options",
    "mount_argv",
    "parse_peer_status",
    "parse_volume_info",
    "peer_probe",
    "peer_status",
    "plan_bricks",
    "replica_warning",
    "run_in",
    "volume_create",
    "volume_info",
    "volume_set",
    "volume_start",
]
