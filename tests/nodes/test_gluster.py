"""GlusterFS for the shared site files (plan D4, C6): the argv the farm runs, the
reading of gluster's own output, and its failures. No gluster is run: the exec
function is a fake that answers as the gluster CLI does (exit code, its words)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from nodes import gluster
from nodes.gluster import GlusterError

HOSTS = ["10.213.0.11", "10.213.0.12", "10.213.0.13"]

# `gluster volume info farm-sites` on three nodes after create, set and start
# (GlusterFS 10 layout; an arbiter volume counts its bricks as "1 x (2 + 1) = 3").
INFO_ARBITER = """
Volume Name: farm-sites
Type: Replicate
Volume ID: 5f1c6a2e-3b0d-4c1e-9a57-0e9b8d2f4c11
Status: Started
Snapshot Count: 0
Number of Bricks: 1 x (2 + 1) = 3
Transport-type: tcp
Bricks:
Brick1: 10.213.0.11:/srv/gluster/brick
Brick2: 10.213.0.12:/srv/gluster/brick
Brick3: 10.213.0.13:/srv/gluster/arbiter (arbiter)
Options Reconfigured:
network.ping-timeout: 5
cluster.granular-entry-heal: on
storage.fips-mode-rchecksum: on
transport.address-family: inet
nfs.disable: on
performance.client-io-threads: off
"""

# The same on two nodes, created but not started yet.
INFO_REPLICA_2 = """
Volume Name: farm-sites
Type: Replicate
Volume ID: 0b7e1d94-8c62-4f0a-b3a5-6d2e9c1f7a08
Status: Created
Snapshot Count: 0
Number of Bricks: 1 x 2 = 2
Transport-type: tcp
Bricks:
Brick1: 10.213.0.11:/srv/gluster/brick
Brick2: 10.213.0.12:/srv/gluster/brick
Options Reconfigured:
cluster.granular-entry-heal: on
storage.fips-mode-rchecksum: on
transport.address-family: inet
nfs.disable: on
performance.client-io-threads: off
"""

# `gluster peer status` on node-1: node-2 joined, node-3 probed but paused.
PEER_STATUS = """Number of Peers: 2

Hostname: 10.213.0.12
Uuid: d7b5c4ce-c649-4c5e-ad74-f2132d6646a8
State: Peer in Cluster (Connected)

Hostname: 10.213.0.13
Uuid: 9b192596-9376-4752-9c79-1ef8c767328a
State: Peer in Cluster (Disconnected)
Other names:
farm-node-3
"""


class FakeExec:
    """Answers each argv with a fixed (exit code, output) and records what it ran."""

    def __init__(self, code: int | None, output: bytes | str) -> None:
        self.code = code
        self.output = output
        self.ran: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int | None, bytes | str]:
        self.ran.append(list(argv))
        return self.code, self.output


# --- argv -------------------------------------------------------------------


def test_three_nodes_make_a_replica_3_arbiter_1_volume_with_the_arbiter_on_node_3():
    bricks = gluster.plan_bricks(HOSTS)
    assert gluster.volume_create("farm-sites", bricks) == [
        "gluster", "--mode=script", "volume", "create", "farm-sites",
        "replica", "3", "arbiter", "1",
        "10.213.0.11:/srv/gluster/brick",
        "10.213.0.12:/srv/gluster/brick",
        "10.213.0.13:/srv/gluster/arbiter",
        "force",
    ]  # fmt: skip
    assert gluster.replica_warning(bricks) is None


def test_more_than_three_nodes_still_use_the_first_three_for_bricks():
    bricks = gluster.plan_bricks([*HOSTS, "10.213.0.14", "10.213.0.15"])
    assert [b.split(":")[0] for b in bricks] == HOSTS


def test_three_bricks_without_an_arbiter_are_plain_replica_3():
    argv = gluster.volume_create("farm-sites", gluster.plan_bricks(HOSTS), arbiter=False)
    assert argv[5:7] == ["replica", "3"]
    assert "arbiter" not in argv


def test_two_nodes_make_replica_2_and_say_why_that_is_weaker():
    bricks = gluster.plan_bricks(HOSTS[:2])
    argv = gluster.volume_create("farm-sites", bricks)
    assert argv == [
        "gluster", "--mode=script", "volume", "create", "farm-sites", "replica", "2",
        "10.213.0.11:/srv/gluster/brick", "10.213.0.12:/srv/gluster/brick", "force",
    ]  # fmt: skip
    warning = gluster.replica_warning(bricks)
    assert warning is not None
    assert "first node stops writes" in warning
    assert "replica 3 arbiter 1" in warning


def test_an_arbiter_needs_a_third_brick():
    with pytest.raises(GlusterError, match="needs 3 bricks"):
        gluster.volume_create("farm-sites", gluster.plan_bricks(HOSTS[:2]), arbiter=True)


@pytest.mark.parametrize("bricks", [[], ["10.213.0.11:/srv/gluster/brick"]])
def test_one_brick_or_none_is_refused_and_the_bind_fallback_named(bricks):
    with pytest.raises(GlusterError, match=r"needs 2 or 3 bricks.*FARM_SHARED_FILES=bind"):
        gluster.volume_create("farm-sites", bricks)


@pytest.mark.parametrize("hosts", [[], ["10.213.0.11"]])
def test_planning_bricks_for_one_node_or_none_is_refused(hosts):
    with pytest.raises(GlusterError, match="at least 2 nodes"):
        gluster.plan_bricks(hosts)


def test_four_bricks_are_refused():
    bricks = [f"10.213.0.1{i}:/srv/gluster/brick" for i in range(1, 5)]
    with pytest.raises(GlusterError, match="3 bricks at most"):
        gluster.volume_create("farm-sites", bricks)


@pytest.mark.parametrize(
    "bricks",
    [
        ["10.213.0.11:/srv/gluster/brick", "10.213.0.11:/srv/gluster/brick"],
        ["10.213.0.11:/srv/gluster/brick", "10.213.0.12"],
        ["10.213.0.11:/srv/gluster/brick", "10.213.0.12:srv/gluster"],
        ["10.213.0.11:/srv/gluster/brick", "10.213.0.12:/srv/../etc"],
        ["10.213.0.11:/srv/gluster/brick", "node 2:/srv/gluster/brick"],
        ["10.213.0.11:/srv/gluster/brick", "-o:/srv/gluster/brick"],
    ],
)
def test_bricks_that_are_not_host_and_absolute_path_are_refused(bricks):
    with pytest.raises(GlusterError):
        gluster.volume_create("farm-sites", bricks)


@pytest.mark.parametrize("name", ["", "farm sites", "-farm", "farm/sites", "a" * 65])
def test_volume_names_are_validated_before_they_reach_argv(name):
    with pytest.raises(GlusterError, match="volume name"):
        gluster.volume_start(name)


def test_peer_probe_start_info_and_status_argv():
    assert gluster.peer_probe("10.213.0.12") == [
        "gluster", "--mode=script", "peer", "probe", "10.213.0.12",
    ]  # fmt: skip
    assert gluster.peer_status() == ["gluster", "--mode=script", "peer", "status"]
    assert gluster.volume_start("farm-sites") == [
        "gluster", "--mode=script", "volume", "start", "farm-sites",
    ]  # fmt: skip
    assert gluster.volume_info("farm-sites")[2:] == ["volume", "info", "farm-sites"]
    with pytest.raises(GlusterError, match="host name"):
        gluster.peer_probe("10.213.0.12; reboot")


def test_the_default_options_lower_the_ping_timeout_to_5_seconds():
    assert gluster.default_options("farm-sites") == [
        ["gluster", "--mode=script", "volume", "set", "farm-sites", "network.ping-timeout", "5"],
    ]


@pytest.mark.parametrize(
    ("key", "value"), [("ping-timeout", "5"), ("network.ping-timeout", ""), ("a.b", "5 6")]
)
def test_volume_set_refuses_odd_keys_and_values(key, value):
    with pytest.raises(GlusterError):
        gluster.volume_set("farm-sites", key, value)


def test_the_fuse_mount_names_the_other_nodes_as_backup_volfile_servers():
    argv = gluster.mount_argv("10.213.0.11", "farm-sites", "/srv/farm/sites", HOSTS[1:])
    assert argv == [
        "mount", "-t", "glusterfs",
        "-o", "backup-volfile-servers=10.213.0.12:10.213.0.13",
        "10.213.0.11:/farm-sites", "/srv/farm/sites",
    ]  # fmt: skip


def test_a_mount_without_backup_servers_has_no_options():
    argv = gluster.mount_argv("10.213.0.11", "farm-sites", "/srv/farm/sites", [])
    assert argv == ["mount", "-t", "glusterfs", "10.213.0.11:/farm-sites", "/srv/farm/sites"]


@pytest.mark.parametrize(
    ("backups", "target"),
    [(["10.213.0.11"], "/srv/farm/sites"), ([], "relative/sites"), ([], "/srv/../etc")],
)
def test_a_mount_refuses_a_repeated_server_or_a_relative_target(backups, target):
    with pytest.raises(GlusterError):
        gluster.mount_argv("10.213.0.11", "farm-sites", target, backups)


# --- parsing ----------------------------------------------------------------


def test_volume_info_of_the_arbiter_volume():
    (info,) = gluster.parse_volume_info(INFO_ARBITER)
    assert (info.name, info.type, info.status, info.started) == (
        "farm-sites", "Replicate", "Started", True,
    )  # fmt: skip
    assert info.bricks == (
        gluster.Brick("10.213.0.11", "/srv/gluster/brick"),
        gluster.Brick("10.213.0.12", "/srv/gluster/brick"),
        gluster.Brick("10.213.0.13", "/srv/gluster/arbiter", arbiter=True),
    )
    assert info.arbiter_count == 1
    assert info.options["network.ping-timeout"] == "5"
    assert info.options["nfs.disable"] == "on"


def test_volume_info_of_a_replica_2_volume_not_started_yet():
    (info,) = gluster.parse_volume_info(INFO_REPLICA_2)
    assert info.status == "Created"
    assert not info.started
    assert [b.host for b in info.bricks] == ["10.213.0.11", "10.213.0.12"]
    assert info.arbiter_count == 0
    assert "network.ping-timeout" not in info.options


def test_volume_info_with_two_volumes_and_with_none():
    other = INFO_REPLICA_2.replace("farm-sites", "other").replace("Created", "Stopped")
    volumes = gluster.parse_volume_info(INFO_ARBITER + "\n" + other)
    assert [(v.name, v.status, len(v.bricks)) for v in volumes] == [
        ("farm-sites", "Started", 3),
        ("other", "Stopped", 2),
    ]
    assert gluster.parse_volume_info("No volumes present\n") == []


def test_volume_info_without_a_status_line_is_an_error():
    with pytest.raises(GlusterError, match="no Status line"):
        gluster.parse_volume_info(INFO_ARBITER.replace("Status: Started\n", ""))


def test_peer_status_reads_each_peer_and_its_connection():
    peers = gluster.parse_peer_status(PEER_STATUS)
    assert [(p.hostname, p.in_cluster, p.connected) for p in peers] == [
        ("10.213.0.12", True, True),
        ("10.213.0.13", True, False),
    ]
    assert peers[0].uuid == "d7b5c4ce-c649-4c5e-ad74-f2132d6646a8"
    assert gluster.parse_peer_status("Number of Peers: 0\n") == []


def test_a_peer_without_a_state_line_is_an_error():
    with pytest.raises(GlusterError, match=r"10\.213\.0\.12 without Uuid or State"):
        gluster.parse_peer_status(PEER_STATUS.replace("State: Peer in Cluster (Connected)\n", ""))


def test_a_peer_that_only_accepted_the_request_is_not_in_the_cluster_yet():
    text = PEER_STATUS.replace("Peer in Cluster (Connected)", "Accepted peer request (Connected)")
    first = gluster.parse_peer_status(text)[0]
    assert first.connected
    assert not first.in_cluster


# --- running ----------------------------------------------------------------


def test_run_in_returns_the_output_of_a_zero_exit():
    fake = FakeExec(0, b"volume start: farm-sites: success\n")
    assert gluster.run_in(fake, gluster.volume_start("farm-sites")) == (
        "volume start: farm-sites: success"
    )
    assert fake.ran == [gluster.volume_start("farm-sites")]


def test_run_in_raises_with_gluster_s_own_words():
    fake = FakeExec(1, b"volume create: farm-sites: failed: Volume farm-sites already exists\n")
    argv = gluster.volume_create("farm-sites", gluster.plan_bricks(HOSTS))
    with pytest.raises(GlusterError) as caught:
        gluster.run_in(fake, argv)
    assert "Volume farm-sites already exists" in caught.value.message
    assert caught.value.message.startswith("gluster volume create farm-sites replica 3")
    assert "(exit 1)" in caught.value.message
    assert not caught.value.retryable


def test_a_peer_not_yet_reachable_is_a_retryable_failure():
    words = "peer probe: failed: Probe returned with Transport endpoint is not connected"
    fake = FakeExec(1, words)
    with pytest.raises(GlusterError, match="Transport endpoint") as caught:
        gluster.run_in(fake, gluster.peer_probe("10.213.0.13"))
    assert caught.value.retryable


def test_a_failure_without_words_or_exit_code_still_says_what_failed():
    with pytest.raises(GlusterError, match=r"gluster peer status failed \(exit None\): no output"):
        gluster.run_in(FakeExec(None, b""), gluster.peer_status())
