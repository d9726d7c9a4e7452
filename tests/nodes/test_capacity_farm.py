"""Capacity on a farm of three nodes, as the local multi-node farm lays them out:
farm-node-1 is a manager with the edge and db roles (no site runs there), farm-node-2
and farm-node-3 are edge+worker. Only the two workers count, only while ready and
active; sites spread over both; a refusal names each worker and what it is short of."""

from __future__ import annotations

import pytest

from nodes.capacity import (
    CapacityError,
    LiveSites,
    check_room_for_site,
    current_capacity,
    current_rooms,
)
from nodes.models import Node
from sites.models import Site

GIB = 1024**3
MIB = 1024**2
NOTHING_UNSEEN = LiveSites(cached=0, plain=0, unseen_cached=0, unseen_plain=0)


def farm_node(n: int, roles: list[str], **fields: object) -> Node:
    """A synced row of the local farm: every nested node reports the host's 2 CPUs and
    its memory (23.5 GiB; a round 24 GiB here), plan R5."""
    values: dict[str, object] = {
        "role": "manager",
        "status": "ready",
        "availability": "active",
        "cpus": 2,
        "memory_bytes": 24 * GIB,
        "reserved_cpus": 0,
        "reserved_memory_bytes": 0,
        "seen_site_ids": [],
        **fields,
    }
    return Node.objects.create(
        swarm_id=f"id-{n}", hostname=f"farm-node-{n}", farm_roles=roles, **values
    )


@pytest.fixture
def three_nodes(db) -> dict[str, Node]:
    return {
        "node-1": farm_node(1, ["edge", "db"], reserved_memory_bytes=880 * MIB),
        "node-2": farm_node(2, ["edge", "worker"]),
        "node-3": farm_node(3, ["edge", "worker"]),
    }


def test_the_two_workers_count_and_the_manager_without_the_worker_role_does_not(three_nodes):
    capacity = current_capacity(NOTHING_UNSEEN)
    assert (capacity.workers, capacity.cpus, capacity.memory_mb) == (2, 4, 2 * 24 * 1024)
    assert {r.node.hostname for r in current_rooms(NOTHING_UNSEEN)} == {
        "farm-node-2",
        "farm-node-3",
    }


@pytest.mark.parametrize(
    "change", [{"availability": "drain"}, {"availability": "pause"}, {"status": "down"}]
)
def test_a_drained_paused_or_down_worker_does_not_count(three_nodes, change):
    Node.objects.filter(pk=three_nodes["node-2"].pk).update(**change)
    rooms = current_rooms(NOTHING_UNSEEN)
    assert [r.node.hostname for r in rooms] == ["farm-node-3"]
    Node.objects.filter(pk=three_nodes["node-3"].pk).update(status="down")
    with pytest.raises(CapacityError, match="No ready worker node is known"):
        check_room_for_site(cache_enabled=False, live=NOTHING_UNSEEN)


def test_new_sites_spread_over_both_workers_by_free_memory(three_nodes):
    # farm-node-2 already holds 448 MB more than farm-node-3: the next four plain
    # sites (112 MB each) go to farm-node-3, then the two take turns.
    Node.objects.filter(pk=three_nodes["node-2"].pk).update(reserved_memory_bytes=448 * MIB)
    rooms = {
        r.node.hostname: r
        for r in current_rooms(LiveSites(cached=0, plain=10, unseen_cached=0, unseen_plain=10))
    }
    free = 24 * 1024
    assert rooms["farm-node-2"].memory_mb == free - 448 - 3 * 112
    assert rooms["farm-node-3"].memory_mb == free - 7 * 112


@pytest.mark.parametrize("change", [{"availability": "drain"}, {"status": "down"}])
def test_the_sites_seen_on_a_drained_or_down_worker_are_placed_again_on_the_others(
    three_nodes, tenant, change
):
    moved = [
        Site.objects.create(tenant=tenant, domain=f"m{n}.acme.test", status="active")
        for n in range(2)
    ]
    stayed = Site.objects.create(tenant=tenant, domain="s.acme.test", status="active")
    Node.objects.filter(pk=three_nodes["node-2"].pk).update(
        seen_site_ids=[s.pk for s in moved], reserved_memory_bytes=2 * 128 * MIB, **change
    )
    Node.objects.filter(pk=three_nodes["node-3"].pk).update(
        seen_site_ids=[stayed.pk], reserved_memory_bytes=128 * MIB
    )
    live = Site.objects.live_counts()
    assert live == LiveSites(cached=3, plain=0, unseen_cached=2, unseen_plain=0)
    (room,) = current_rooms(live)
    assert room.memory_mb == 24 * 1024 - 3 * 128  # its own site, and the two that move there


def test_a_refusal_names_each_worker_and_the_resource_it_is_short_of(three_nodes, settings):
    settings.FARM_CPU_RESERVATION_SCALE = 1.0
    Node.objects.filter(pk=three_nodes["node-2"].pk).update(
        reserved_memory_bytes=24 * GIB - 40 * MIB
    )
    Node.objects.filter(pk=three_nodes["node-3"].pk).update(reserved_cpus=1.9)
    with pytest.raises(CapacityError) as refused:
        check_room_for_site(cache_enabled=False, live=NOTHING_UNSEEN)
    assert str(refused.value) == (
        "No worker has room for this site's php-fpm (it reserves 96 MB of memory and "
        "0.25 CPU): farm-node-3 has 0.1 of 2 CPUs unreserved, farm-node-2 has 40 MB of "
        "24.0 GiB unreserved. Memory is short on farm-node-2; CPU is short on farm-node-3: "
        "add a worker node or delete unused sites."
    )


def test_a_refusal_on_a_worker_short_of_both_says_both(three_nodes, settings):
    settings.FARM_CPU_RESERVATION_SCALE = 1.0
    Node.objects.filter(pk=three_nodes["node-2"].pk).update(availability="drain")
    Node.objects.filter(pk=three_nodes["node-3"].pk).update(
        reserved_cpus=2, reserved_memory_bytes=24 * GIB
    )
    with pytest.raises(CapacityError) as refused:
        check_room_for_site(cache_enabled=False, live=NOTHING_UNSEEN)
    assert "farm-node-3 has 0 MB of 24.0 GiB and 0 of 2 CPUs unreserved." in str(refused.value)
    assert "Memory is short on farm-node-3; CPU is short on farm-node-3:" in str(refused.value)
    assert "farm-node-2" not in str(refused.value)


@pytest.mark.django_db
def test_a_refusal_on_a_large_farm_names_five_workers_and_counts_the_rest():
    for n in range(2, 9):
        farm_node(n, ["worker"], reserved_memory_bytes=24 * GIB - n * MIB)
    with pytest.raises(CapacityError) as refused:
        check_room_for_site(cache_enabled=False, live=NOTHING_UNSEEN)
    message = str(refused.value)
    assert "farm-node-8 has 8 MB of 24.0 GiB unreserved, farm-node-7 has 7 MB" in message
    assert "farm-node-4 has 4 MB of 24.0 GiB unreserved, 2 more ready workers have" in message
    assert "farm-node-3 has" not in message
    assert "Memory is short on farm-node-8, farm-node-7, farm-node-6, farm-node-5, " in message
    assert "farm-node-4 and 2 more: add a worker node" in message
