"""Forming, tuning and labelling the local farm's Swarm, against fake engines that
keep the Engine API's shapes (``info()["Swarm"]``, ``inspect_swarm()``, node specs).
The real joins are checked on a real local farm (plan C8)."""

from __future__ import annotations

import copy
import logging
from typing import Any

import docker.errors
import docker.types
import pytest

from nodes.local_nodes import LocalNodeError
from nodes.local_nodes.plan import plan_roles
from nodes.local_nodes.swarm import form_swarm, label_roles, tune_swarm, tuned_spec

WORKER_TOKEN = (
    "SWMTKN-1-4a0bsb7ydxw1l3k8xqm2r7hzyt0h6m3ib5i2s8yy1vd8fkc7pp-0w4vf2pkq8u3ybvfq3vx1bbfs"
)
MANAGER_TOKEN = (
    "SWMTKN-1-4a0bsb7ydxw1l3k8xqm2r7hzyt0h6m3ib5i2s8yy1vd8fkc7pp-9s9j4hc0cyb6n8qtjhb0sbpqa"
)

# What a 20.10 engine answers for GET /swarm, trimmed to the fields that matter.
SWARM_SPEC: dict[str, Any] = {
    "Name": "default",
    "Labels": {"farm.keep": "yes"},
    "Orchestration": {"TaskHistoryRetentionLimit": 5},
    "Raft": {
        "SnapshotInterval": 10000,
        "KeepOldSnapshots": 0,
        "LogEntriesForSlowFollowers": 500,
        "ElectionTick": 10,
        "HeartbeatTick": 1,
    },
    "Dispatcher": {"HeartbeatPeriod": 5_000_000_000},
    "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000, "ExternalCAs": []},
    "TaskDefaults": {"LogDriver": {"Name": "json-file", "Options": {"max-size": "10m"}}},
    "EncryptionConfig": {"AutoLockManagers": False},
}


class FakeSwarm:
    """The cluster every fake engine shares."""

    def __init__(self) -> None:
        self.id = ""
        self.spec = copy.deepcopy(SWARM_SPEC)
        self.version = 10
        self.updates: list[tuple[int, dict[str, Any]]] = []
        self.nodes: list[FakeNode] = []


class FakeNode:
    def __init__(self, hostname: str, labels: dict[str, str], role: str) -> None:
        self.attrs: dict[str, Any] = {
            "Description": {"Hostname": hostname},
            "Spec": {"Role": role, "Availability": "active", "Labels": labels},
        }
        self.updated: list[dict[str, Any]] = []

    def update(self, spec: dict[str, Any]) -> None:
        self.updated.append(spec)
        self.attrs["Spec"] = spec


class FakeApi:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def init_swarm(self, advertise_addr: str, listen_addr: str, **_: Any) -> str:
        self.engine.calls.append(("init", advertise_addr, listen_addr))
        self.engine.cluster.id = "cluster-1"
        self.engine.join_state("manager")
        return self.engine.node_id

    def inspect_swarm(self) -> dict[str, Any]:
        cluster = self.engine.cluster
        return {
            "ID": cluster.id,
            "Version": {"Index": cluster.version},
            "Spec": copy.deepcopy(cluster.spec),
            "JoinTokens": {"Worker": WORKER_TOKEN, "Manager": MANAGER_TOKEN},
        }

    def join_swarm(
        self, remote_addrs: list[str], join_token: str, listen_addr: str, advertise_addr: str
    ) -> bool:
        self.engine.calls.append(("join", remote_addrs, join_token, listen_addr, advertise_addr))
        if self.engine.refuse_join:
            raise docker.errors.APIError(
                "500 Server Error", explanation=f"rpc error: invalid join token {join_token}"
            )
        self.engine.join_state("manager" if join_token == MANAGER_TOKEN else "worker")
        return True

    def update_swarm(self, version: int, swarm_spec: dict[str, Any]) -> bool:
        cluster = self.engine.cluster
        assert version == cluster.version, "stale version"
        cluster.updates.append((version, copy.deepcopy(swarm_spec)))
        cluster.spec = copy.deepcopy(swarm_spec)
        cluster.version += 1
        return True


class FakeNodes:
    def __init__(self, cluster: FakeSwarm) -> None:
        self.cluster = cluster

    def list(self) -> list[FakeNode]:
        return self.cluster.nodes


class FakeEngine:
    def __init__(self, name: str, cluster: FakeSwarm) -> None:
        self.name = name
        self.cluster = cluster
        self.node_id = f"id-{name}"
        self.calls: list[tuple[Any, ...]] = []
        self.swarm: dict[str, Any] = {"LocalNodeState": "inactive", "NodeID": ""}
        self.refuse_join = False
        self.api = FakeApi(self)
        self.nodes = FakeNodes(cluster)

    def join_state(self, role: str) -> None:
        self.swarm = {"LocalNodeState": "active", "NodeID": self.node_id}
        if role == "manager":
            self.swarm.update(ControlAvailable=True, Cluster={"ID": self.cluster.id})
        else:
            self.swarm.update(ControlAvailable=False, RemoteManagers=[{"Addr": "10.213.0.11:2377"}])
        self.cluster.nodes.append(FakeNode(self.name, {"farm.other": "kept"}, role))

    def info(self) -> dict[str, Any]:
        return {"Swarm": copy.deepcopy(self.swarm)}


def _farm(n: int) -> tuple[list[Any], dict[str, Any], FakeSwarm]:
    cluster = FakeSwarm()
    specs = plan_roles(n)
    return specs, {s.name: FakeEngine(s.name, cluster) for s in specs}, cluster


# -- forming ---------------------------------------------------------------------


def test_node_1_initialises_on_its_address_and_the_others_join_with_their_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    specs, engines, _ = _farm(4)
    progress: list[str] = []
    with caplog.at_level(logging.DEBUG):
        ids = form_swarm(specs, engines, progress=progress.append)

    assert engines["farm-node-1"].calls == [("init", "10.213.0.11", "10.213.0.11:2377")]
    joins = {name: e.calls[0] for name, e in engines.items() if name != "farm-node-1"}
    assert joins["farm-node-2"] == (
        "join", ["10.213.0.11:2377"], MANAGER_TOKEN, "10.213.0.12:2377", "10.213.0.12"
    )  # fmt: skip
    assert joins["farm-node-3"][2] == MANAGER_TOKEN
    assert joins["farm-node-4"][2] == WORKER_TOKEN
    assert ids == {name: f"id-{name}" for name in engines}
    # The tokens went into join_swarm only: not into progress, not into any log record.
    shown = "\n".join(progress) + caplog.text
    assert "SWMTKN" not in shown
    assert len(progress) == 4 and "farm-node-4: joined as worker" in progress[-1]


def test_forming_again_changes_nothing() -> None:
    specs, engines, _ = _farm(3)
    form_swarm(specs, engines, progress=lambda _m: None)
    before = {name: list(e.calls) for name, e in engines.items()}
    progress: list[str] = []
    form_swarm(specs, engines, progress=progress.append)
    assert {name: e.calls for name, e in engines.items()} == before
    assert all("already" in line for line in progress)


def test_a_refused_join_names_the_node_and_never_the_token() -> None:
    specs, engines, _ = _farm(2)
    engines["farm-node-2"].refuse_join = True
    progress: list[str] = []
    with pytest.raises(LocalNodeError) as failed:
        form_swarm(specs, engines, progress=progress.append)
    assert "Joining farm-node-2 to the swarm as worker" in failed.value.message
    assert "invalid join token" in failed.value.message
    assert "SWMTKN" not in failed.value.message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    assert "SWMTKN" not in "\n".join(progress)


def test_a_node_of_another_swarm_is_refused() -> None:
    specs, engines, _ = _farm(2)
    stranger = engines["farm-node-2"]
    stranger.swarm = {
        "LocalNodeState": "active",
        "NodeID": "x",
        "RemoteManagers": [{"Addr": "10.99.0.1:2377"}],
    }
    with pytest.raises(LocalNodeError, match="farm-node-2 is in another swarm"):
        form_swarm(specs, engines, progress=lambda _m: None)


# -- tuning ------------------------------------------------------------------------


def test_tune_swarm_writes_the_whole_spec_back_with_two_fields_changed() -> None:
    specs, engines, cluster = _farm(1)
    form_swarm(specs, engines, progress=lambda _m: None)
    leader = engines["farm-node-1"]

    assert tune_swarm(leader, heartbeat_s=2, history=2, progress=lambda _m: None)

    [(version, posted)] = cluster.updates
    assert version == 10
    expected = copy.deepcopy(SWARM_SPEC)
    expected["Dispatcher"]["HeartbeatPeriod"] = 2_000_000_000
    expected["Orchestration"]["TaskHistoryRetentionLimit"] = 2
    assert posted == expected  # Raft, CA, Name, Labels, TaskDefaults... all kept

    # Asked again for the same: nothing is written.
    assert not tune_swarm(leader, heartbeat_s=2, history=2, progress=lambda _m: None)
    assert len(cluster.updates) == 1
    # One field at a time keeps the other as it now is.
    assert tune_swarm(leader, heartbeat_s=1.5, progress=lambda _m: None)
    assert cluster.updates[-1] == (
        11,
        {**expected, "Dispatcher": {"HeartbeatPeriod": 1_500_000_000}},
    )


def test_tuned_spec_does_not_touch_its_input_and_refuses_nonsense() -> None:
    original = copy.deepcopy(SWARM_SPEC)
    tuned_spec(original, heartbeat_s=1, history=1)
    assert original == SWARM_SPEC
    assert tuned_spec({}, heartbeat_s=None, history=3) == {
        "Orchestration": {"TaskHistoryRetentionLimit": 3}
    }
    with pytest.raises(LocalNodeError, match="heartbeat"):
        tuned_spec(SWARM_SPEC, heartbeat_s=0, history=None)
    with pytest.raises(LocalNodeError, match="history"):
        tuned_spec(SWARM_SPEC, heartbeat_s=None, history=0)


def test_why_not_the_sdks_swarm_update_its_spec_holds_only_the_named_fields() -> None:
    # docker-py's Swarm.update(**kw) posts create_swarm_spec(**kw): this object.
    partial = docker.types.SwarmSpec(
        "1.41", task_history_retention_limit=2, dispatcher_heartbeat_period=2_000_000_000
    )
    assert set(partial) == {"Orchestration", "Dispatcher"}
    assert not {"Name", "Labels", "Raft", "CAConfig", "TaskDefaults"} & set(partial)


# -- labels ------------------------------------------------------------------------


def test_label_roles_sets_exactly_the_planned_roles_and_keeps_other_labels() -> None:
    specs, engines, cluster = _farm(3)
    form_swarm(specs, engines, progress=lambda _m: None)
    cluster.nodes[1].attrs["Spec"]["Labels"]["farm.role.db"] = "true"  # a stale guess

    label_roles(engines["farm-node-1"], specs, progress=lambda _m: None)

    labels = {n.attrs["Description"]["Hostname"]: n.attrs["Spec"]["Labels"] for n in cluster.nodes}
    assert labels["farm-node-1"] == {
        "farm.other": "kept",
        "farm.role.edge": "true",
        "farm.role.db": "true",
    }
    assert labels["farm-node-2"] == {
        "farm.other": "kept",
        "farm.role.edge": "true",
        "farm.role.worker": "true",
    }
    assert cluster.nodes[0].attrs["Spec"]["Role"] == "manager"  # the rest of the spec stays
    updated = [len(n.updated) for n in cluster.nodes]
    label_roles(engines["farm-node-1"], specs, progress=lambda _m: None)
    assert [len(n.updated) for n in cluster.nodes] == updated  # idempotent


def test_label_roles_says_which_planned_node_is_missing() -> None:
    specs, engines, _ = _farm(2)
    form_swarm(specs[:1], engines, progress=lambda _m: None)
    with pytest.raises(LocalNodeError, match="not in the swarm: farm-node-2"):
        label_roles(engines["farm-node-1"], specs, progress=lambda _m: None)
