"""The farm/node image's recipe and its init script, without Docker.

The recipe is built only on request; the init script is run here with fake
``mount``, ``glusterd`` and ``dockerd`` on PATH (FARM_NODE_PREFIX roots its paths
in a temporary folder), so what it wipes and how it starts the engine is checked
for real. The image itself is exercised in test_local_nodes_docker.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from nodes.images import EXTRA_ROLES, ROLES, ImageBuildError, local_image_map, recipes
from nodes.images.build import _select_roles
from nodes.images.builder import recipes as recipes_module

INIT = recipes_module.IMAGEBUILD_DIR / "node" / "farm-node-init"


def test_the_node_recipe_is_built_only_when_asked_for() -> None:
    assert "node" in EXTRA_ROLES and "node" not in ROLES
    assert "node" not in local_image_map()
    assert _select_roles(None) == list(ROLES)
    assert _select_roles(["node", "redis"]) == ["redis", "node"]
    with pytest.raises(ImageBuildError, match="unknown image role"):
        _select_roles(["nodes"])


def test_the_node_recipe_has_the_engine_and_gluster_packages_and_a_content_tag() -> None:
    node = recipes()["node"]
    for package in ("docker.io", "containerd", "runc", "tini", "iptables", "iproute2"):
        assert package in node.packages
    assert {"glusterfs-server", "glusterfs-client"} <= set(node.packages)
    assert re.fullmatch(r"farm/node:[0-9a-f]{12}", node.content_tag())
    files = {f.path: f for f in node.files}
    assert files["farm-node-init"].executable
    assert {"Dockerfile", "daemon.json"} <= set(files)
    dockerfile = files["Dockerfile"].data.decode()
    assert "FROM ${ROOTFS}" in dockerfile
    assert "farm-node-init" in dockerfile


def test_changing_the_init_script_changes_the_node_tag_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "imagebuild"
    shutil.copytree(recipes_module.IMAGEBUILD_DIR, copy)
    monkeypatch.setattr(recipes_module, "IMAGEBUILD_DIR", copy)
    before = {role: r.content_tag() for role, r in recipes().items()}
    with (copy / "node" / "farm-node-init").open("a") as script:
        script.write("# changed\n")
    after = {role: r.content_tag() for role, r in recipes().items()}
    assert {role for role in after if after[role] != before[role]} == {"node"}


# -- the init script, with fake tools --------------------------------------


def _fake_tools(bin_dir: Path, record: Path, *, mount_fails: bool = False) -> None:
    bin_dir.mkdir(exist_ok=True)
    for tool in ("mount", "glusterd", "dockerd", "sleep"):
        # A failing mount fails only the Gluster mount, not --make-rshared.
        fail = '[ "$1" = -t ] && exit 1\n' if (tool == "mount" and mount_fails) else ""
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >>"{record}"\n{fail}exit 0\n')
        script.chmod(0o755)


def _run_init(
    tmp_path: Path, env: dict[str, str], *, mount_fails: bool = False
) -> tuple[subprocess.CompletedProcess[str], list[str], Path]:
    root = tmp_path / "root"
    record = tmp_path / "calls.log"
    record.touch()
    _fake_tools(tmp_path / "bin", record, mount_fails=mount_fails)
    full_env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "FARM_NODE_PREFIX": str(root),
        **env,
    }
    done = subprocess.run(
        ["sh", str(INIT), "--debug"], env=full_env, capture_output=True, text=True, timeout=30
    )
    calls = record.read_text().splitlines()
    return done, calls, root


def _seed_docker_state(root: Path) -> None:
    data = root / "var" / "lib" / "docker"
    (data / "swarm" / "raft").mkdir(parents=True)
    (data / "network" / "files").mkdir(parents=True)
    (data / "network" / "files" / "local-kv.db").write_bytes(b"old")
    (data / "image").mkdir()


def test_init_execs_dockerd_on_both_sockets_under_the_node_cgroup(tmp_path: Path) -> None:
    done, calls, root = _run_init(tmp_path, {"FARM_NODE_NAME": "farm-node-2"})
    assert done.returncode == 0, done.stderr
    assert "mount --make-rshared /" in calls
    dockerd = [c for c in calls if c.startswith("dockerd ")]
    assert len(dockerd) == 1
    argv = dockerd[0].split()
    assert f"--host=unix://{root}/farm-api/docker.sock" in argv
    assert f"--host=unix://{root}/var/run/docker.sock" in argv
    assert "--cgroup-parent=farm-node-2" in argv
    assert argv[-1] == "--debug"  # the container's arguments go to dockerd
    assert not any(c.startswith("glusterd") for c in calls)
    # mount --make-rshared comes before the engine starts
    assert calls.index("mount --make-rshared /") < calls.index(dockerd[0])


def test_a_fresh_node_forgets_its_swarm_once_and_keeps_its_images(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _seed_docker_state(root)
    env = {"FARM_NODE_NAME": "farm-node-1", "FARM_NODE_FRESH": "1"}
    done, _calls, _ = _run_init(tmp_path, env)
    assert done.returncode == 0, done.stderr
    data = root / "var" / "lib" / "docker"
    assert not (data / "swarm").exists()
    assert not (data / "network" / "files" / "local-kv.db").exists()
    assert (data / "image").is_dir()

    # A restart of the same container (its marker is there) keeps what it joined since.
    (data / "swarm" / "raft").mkdir(parents=True)
    (tmp_path / "calls.log").unlink()
    done, _calls, _ = _run_init(tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert (data / "swarm" / "raft").is_dir()


def test_without_fresh_the_swarm_state_stays(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _seed_docker_state(root)
    done, _calls, _ = _run_init(tmp_path, {"FARM_NODE_NAME": "farm-node-3"})
    assert done.returncode == 0, done.stderr
    assert (root / "var" / "lib" / "docker" / "swarm" / "raft").is_dir()


def test_glusterd_and_the_shared_mount_come_before_the_engine(tmp_path: Path) -> None:
    env = {
        "FARM_NODE_NAME": "farm-node-1",
        "FARM_NODE_GLUSTERD": "1",
        "FARM_NODE_GLUSTER_VOLUME": "farm-node-1:/farm-sites",
        "FARM_NODE_GLUSTER_BACKUP_SERVERS": "farm-node-2:farm-node-3",
        "FARM_NODE_GLUSTER_MOUNT": "/srv/farm/sites",
    }
    done, calls, root = _run_init(tmp_path, env)
    assert done.returncode == 0, done.stderr
    mount = (
        "mount -t glusterfs -o backup-volfile-servers=farm-node-2:farm-node-3 "
        f"farm-node-1:/farm-sites {root}/srv/farm/sites"
    )
    assert mount in calls
    dockerd = next(c for c in calls if c.startswith("dockerd "))
    assert calls.index(mount) < calls.index(dockerd)
    assert any(c == "glusterd -N" for c in _wait_for_line(tmp_path / "calls.log", "glusterd"))


def test_a_mount_that_never_works_is_reported_and_the_engine_starts_anyway(tmp_path: Path) -> None:
    env = {
        "FARM_NODE_NAME": "farm-node-2",
        "FARM_NODE_GLUSTER_VOLUME": "farm-node-1:/farm-sites",
        "FARM_NODE_GLUSTER_MOUNT": "/srv/farm/sites",
        "FARM_NODE_GLUSTER_WAIT_S": "4",
    }
    done, calls, _ = _run_init(tmp_path, env, mount_fails=True)
    assert done.returncode == 0, done.stderr
    assert "going on without it" in done.stderr
    assert sum(c.startswith("mount -t glusterfs") for c in calls) == 3  # 0 s, 2 s, 4 s
    assert any(c.startswith("dockerd ") for c in calls)


@pytest.mark.parametrize("name", ["", "node-1", "farm-node-1;reboot", "farm-node-"])
def test_init_refuses_a_name_that_is_not_a_node_name(tmp_path: Path, name: str) -> None:
    done, calls, _ = _run_init(tmp_path, {"FARM_NODE_NAME": name})
    assert done.returncode == 2
    assert "FARM_NODE_NAME" in done.stderr
    assert calls == []


def _wait_for_line(record: Path, prefix: str, timeout_s: float = 5.0) -> list[str]:
    """glusterd starts in a background subshell: its line may land a moment later."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = record.read_text().splitlines()
        if any(line.startswith(prefix) for line in lines):
            return lines
        time.sleep(0.05)
    return record.read_text().splitlines()


def test_the_init_script_is_posix_sh() -> None:
    assert INIT.read_text().startswith("#!/bin/sh\n")
    assert os.access(INIT, os.X_OK)
    subprocess.run(["sh", "-n", str(INIT)], check=True)


def test_a_restarted_node_mounts_what_the_farm_recorded_and_keeps_glusterds_state(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "srv" / "gluster").mkdir(parents=True)
    (root / "srv" / "gluster" / "farm-mount.env").write_text(
        "FARM_NODE_GLUSTER_VOLUME=10.213.0.11:/farm-sites\n"
        "FARM_NODE_GLUSTER_BACKUP_SERVERS=10.213.0.12:10.213.0.13\n"
        "FARM_NODE_GLUSTER_MOUNT=/srv/farm/sites\n"
    )
    env = {"FARM_NODE_NAME": "farm-node-2", "FARM_NODE_GLUSTERD": "1"}
    done, calls, root = _run_init(tmp_path, env)
    assert done.returncode == 0, done.stderr
    keep = f"mount --bind {root}/srv/gluster/glusterd {root}/var/lib/glusterd"
    mount = (
        "mount -t glusterfs -o backup-volfile-servers=10.213.0.12:10.213.0.13 "
        f"10.213.0.11:/farm-sites {root}/srv/farm/sites"
    )
    assert keep in calls
    assert mount in calls
    assert calls.index(keep) < calls.index(mount)
    assert calls.index(mount) < calls.index(next(c for c in calls if c.startswith("dockerd ")))


def test_without_a_record_or_volume_nothing_is_mounted(tmp_path: Path) -> None:
    done, calls, _ = _run_init(tmp_path, {"FARM_NODE_NAME": "farm-node-2"})
    assert done.returncode == 0, done.stderr
    assert not any(c.startswith("mount -t glusterfs") for c in calls)
