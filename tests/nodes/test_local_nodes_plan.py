"""The local multi-node farm's plan (roles, addresses, engine container arguments),
the wait for a node's engine against a fake Engine API on a unix socket, and the
IPsec probe's reading of the kernel's answer. No Docker Engine is needed."""

from __future__ import annotations

import http.server
import socketserver
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.models.containers import (  # type: ignore[attr-defined]  # private, no stub
    _create_container_args,
)

from nodes.local_nodes import LocalNodeError, engines, ipsec
from nodes.local_nodes.plan import (
    NODE_LABEL,
    NodeSpec,
    address,
    plan_roles,
    run_kwargs,
    socket_path,
)

M, W = "manager", "worker"


@pytest.fixture(autouse=True)
def _default_subnet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FARM_LOCAL_NODES_SUBNET", raising=False)
    monkeypatch.delenv("FARM_LOCAL_NODES_RUN_DIR", raising=False)


# -- roles -----------------------------------------------------------------

EXPECTED = {
    1: [(M, ("edge", "worker", "db"))],
    2: [(M, ("edge", "worker", "db")), (W, ("worker",))],
    3: [(M, ("edge", "db")), (M, ("edge", "worker")), (M, ("edge", "worker"))],
    4: [(M, ("edge", "db")), (M, ("edge", "worker")), (M, ("edge", "worker")), (W, ("worker",))],
    5: [(M, ("edge", "db")), (M, ("edge",)), (M, ("edge",)), (W, ("worker",)), (W, ("worker",))],
    6: [(M, ("edge", "db")), (M, ("edge",)), (M, ("edge",))] + [(W, ("worker",))] * 3,
}


@pytest.mark.parametrize("n", sorted(EXPECTED))
def test_plan_roles(n: int) -> None:
    specs = plan_roles(n)
    assert [(s.swarm_role, s.roles) for s in specs] == EXPECTED[n]
    assert [s.name for s in specs] == [f"farm-node-{i}" for i in range(1, n + 1)]
    assert [s.address for s in specs] == [f"10.213.0.{10 + i}" for i in range(1, n + 1)]
    managers = [s for s in specs if s.manager]
    assert len(managers) == (1 if n == 2 else min(n, 3))
    assert len(managers) % 2 == 1  # Raft: never an even number of managers
    assert [s.name for s in specs if "db" in s.roles] == ["farm-node-1"]
    assert any("worker" in s.roles for s in specs)
    if n >= 3:
        # Sites never share the db node, and there are always 2 places for them.
        assert "worker" not in specs[0].roles
        assert sum("worker" in s.roles for s in specs) >= 2


def test_a_farm_has_at_least_one_node_and_at_most_what_the_subnet_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(LocalNodeError, match="at least one node"):
        plan_roles(0)
    monkeypatch.setenv("FARM_LOCAL_NODES_SUBNET", "10.9.0.0/28")  # .11 to .14
    assert len(plan_roles(4)) == 4
    with pytest.raises(LocalNodeError, match="room for 4 nodes"):
        plan_roles(5)


# -- addresses ---------------------------------------------------------------


def test_address_is_dot_11_for_node_1_on_the_configured_subnet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert address(1) == "10.213.0.11"
    assert address(3) == "10.213.0.13"
    monkeypatch.setenv("FARM_LOCAL_NODES_SUBNET", "10.77.4.0/24")
    assert address(1) == "10.77.4.11"
    with pytest.raises(LocalNodeError, match="no address left"):
        address(245)
    with pytest.raises(LocalNodeError, match="start at 1"):
        address(0)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("10.213.0.1/24", "not a network"),
        ("nonsense", "not a network"),
        ("fd00::/64", "IPv4"),
        ("10.213.0.0/30", "too small"),
    ],
)
def test_a_bad_subnet_fails_loudly(monkeypatch: pytest.MonkeyPatch, raw: str, words: str) -> None:
    monkeypatch.setenv("FARM_LOCAL_NODES_SUBNET", raw)
    with pytest.raises(LocalNodeError, match=words):
        address(1)


def test_socket_paths_fit_a_unix_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(socket_path("farm-node-1")) == "/run/wpfarm-nodes/farm-node-1/docker.sock"
    assert plan_roles(1)[0].docker_host == "unix:///run/wpfarm-nodes/farm-node-1/docker.sock"
    monkeypatch.setenv("FARM_LOCAL_NODES_RUN_DIR", "/" + "x" * 100)
    with pytest.raises(LocalNodeError, match="longer than 107 bytes"):
        socket_path("farm-node-1")


# -- the engine container ------------------------------------------------------


def _node(index: int = 2) -> NodeSpec:
    return plan_roles(3)[index - 1]


def test_run_kwargs_drop_sys_resource_and_are_never_privileged() -> None:
    kwargs = run_kwargs(_node(), image="farm/node:0123456789ab")
    assert kwargs["cap_drop"] == ["SYS_RESOURCE"]
    assert kwargs["cap_add"] == ["ALL"]
    assert kwargs["privileged"] is False
    assert sorted(kwargs["security_opt"]) == ["apparmor=unconfined", "seccomp=unconfined"]
    assert kwargs["cgroupns"] == "host"
    assert set(kwargs["tmpfs"]) == {"/run", "/tmp"}
    assert kwargs["devices"] == ["/dev/fuse:/dev/fuse:rwm"]
    assert kwargs["sysctls"] == {"net.ipv4.ip_forward": "1"}


def test_run_kwargs_name_volumes_network_and_label_the_node() -> None:
    spec = _node(2)
    kwargs = run_kwargs(spec, image="farm/node:0123456789ab", fresh=False)
    assert kwargs["image"] == "farm/node:0123456789ab"
    assert kwargs["name"] == kwargs["hostname"] == "farm-node-2"
    assert kwargs["labels"][NODE_LABEL] == "farm-node-2"
    assert kwargs["volumes"] == {
        "wpfarm-node-2-docker": {"bind": "/var/lib/docker", "mode": "rw"},
        "wpfarm-node-2-gluster": {"bind": "/srv/gluster", "mode": "rw"},
        "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
        "/run/wpfarm-nodes/farm-node-2": {"bind": "/farm-api", "mode": "rw"},
    }
    assert kwargs["network"] == "farm-nodes"
    assert kwargs["networking_config"] == {
        "farm-nodes": {"IPAMConfig": {"IPv4Address": "10.213.0.12"}}
    }
    assert kwargs["environment"] == {
        "FARM_NODE_NAME": "farm-node-2",
        "FARM_NODE_FRESH": "0",
        "FARM_NODE_GLUSTERD": "1",
    }
    assert run_kwargs(spec, image="x")["environment"]["FARM_NODE_FRESH"] == "1"


def test_extra_volumes_are_added_but_never_replace_the_nodes_own() -> None:
    spec = _node(1)
    extra = {"/srv/farm/prometheus": {"bind": "/srv/farm/prometheus", "mode": "ro"}}
    kwargs = run_kwargs(spec, image="x", extra_volumes=extra)
    assert kwargs["volumes"]["/srv/farm/prometheus"]["mode"] == "ro"
    with pytest.raises(LocalNodeError, match="already mounted"):
        run_kwargs(spec, image="x", extra_volumes={"/sys/fs/cgroup": {"bind": "/x"}})


# -- waiting for an engine: a fake Engine API on the node's socket -------------


class _PingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.endswith("/_ping"):
            body = b"OK"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Api-Version", "1.41")
        else:
            body = b'{"message": "page not found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # a unix peer has no address
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def run_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Short, unlike tmp_path: a socket path has at most 107 bytes.
    with tempfile.TemporaryDirectory(prefix="ln-", dir="/tmp") as folder:
        monkeypatch.setenv("FARM_LOCAL_NODES_RUN_DIR", folder)
        yield Path(folder)


def _serve_later(path: Path, delay_s: float) -> list[_UnixHTTPServer]:
    servers: list[_UnixHTTPServer] = []

    def serve() -> None:
        time.sleep(delay_s)
        path.parent.mkdir(parents=True, exist_ok=True)
        server = _UnixHTTPServer(str(path), _PingHandler)
        servers.append(server)
        server.serve_forever(poll_interval=0.05)

    threading.Thread(target=serve, daemon=True).start()
    return servers


def test_wait_until_ready_returns_a_client_once_the_engine_pings(run_dir: Path) -> None:
    servers = _serve_later(run_dir / "farm-node-1" / "docker.sock", 0.5)
    try:
        started = time.monotonic()
        client = engines.wait_until_ready("farm-node-1", timeout_s=10, poll_s=0.05)
        assert 0.4 < time.monotonic() - started < 5
        assert client.api.base_url.startswith("http+docker://")
        assert client.ping() is True
        client.close()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_an_engine_that_never_answers_times_out_with_a_clear_error(run_dir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(LocalNodeError) as failed:
        engines.wait_until_ready("farm-node-2", timeout_s=0.5, poll_s=0.05)
    assert time.monotonic() - started < 3
    assert failed.value.retryable
    message = failed.value.message
    assert "farm-node-2's engine did not answer" in message
    assert str(run_dir / "farm-node-2" / "docker.sock") in message
    assert "socket did not appear" in message


class _StoppedNode:
    """What docker's Container model shows of a node whose engine exited."""

    labels = {NODE_LABEL: "farm-node-3"}
    status = "exited"
    attrs = {"State": {"ExitCode": 1}}

    def reload(self) -> None:
        pass

    def logs(self, tail: int) -> bytes:
        return b"dockerd: failed to start daemon\njoin SWMTKN-1-abc123-def456 refused\n"


class _Host:
    class containers:  # the SDK's attribute name
        @staticmethod
        def get(name: str) -> _StoppedNode:
            assert name == "farm-node-3"
            return _StoppedNode()


def test_a_node_container_that_stopped_fails_the_wait_at_once(run_dir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(LocalNodeError) as failed:
        engines.wait_until_ready("farm-node-3", host=_Host(), timeout_s=20)  # type: ignore[arg-type]
    assert time.monotonic() - started < 2
    message = failed.value.message
    assert "exited (exit code 1)" in message
    assert "failed to start daemon" in message
    assert "SWMTKN" not in message


# -- IPsec ---------------------------------------------------------------------


def test_the_probe_adds_the_sa_docker_would_and_keeps_the_kernels_refusal() -> None:
    argv = ipsec.add_argv("0x00001234", "ab" * 20)
    assert argv[:4] == ["ip", "xfrm", "state", "add"]
    assert argv[argv.index("mode") + 1] == "transport"
    assert argv[argv.index("aead") + 1 :] == ["rfc4106(gcm(aes))", "0x" + "ab" * 20, "64"]
    assert ipsec.delete_argv("0x00001234")[-1] == "0x00001234"
    with pytest.raises(ValueError, match="40 lower-case hex"):
        ipsec.add_argv("0x1", "short")

    refused = b"RTNETLINK answers: Function not implemented\n"
    assert ipsec.interpret(2, refused) == (False, "RTNETLINK answers: Function not implemented")
    assert ipsec.interpret(0, b"") == (True, "")
    supported, words = ipsec.interpret(1, b"")
    assert not supported and "exited 1" in words


def test_the_docker_sdk_turns_run_kwargs_into_the_engine_apis_create_body() -> None:
    # What containers.run() does before it calls the engine (no engine needed): an
    # argument the SDK does not know would raise TypeError here.
    kwargs = run_kwargs(_node(3), image="farm/node:0123456789ab")
    kwargs.pop("detach")
    body = _create_container_args({**kwargs, "command": None, "version": "1.41"})
    host = body["host_config"]
    assert host["CapAdd"] == ["ALL"] and host["CapDrop"] == ["SYS_RESOURCE"]
    assert not host.get("Privileged")
    assert host["CgroupnsMode"] == "host"
    assert host["SecurityOpt"] == ["seccomp=unconfined", "apparmor=unconfined"]
    assert host["Devices"] == [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}
    ]
    assert host["NetworkMode"] == "farm-nodes"
    assert "wpfarm-node-3-docker:/var/lib/docker:rw" in host["Binds"]
    endpoint = body["networking_config"]["EndpointsConfig"]["farm-nodes"]
    assert endpoint == {"IPAMConfig": {"IPv4Address": "10.213.0.13"}}
    assert body["labels"] == {
        "farm.local-node": "farm-node-3",
        "farm.local-node.roles": "edge,worker",
    }
