"""Is there room for one more site? Each ready worker is asked on its own, as Swarm
places each service on one node; the live sites are counted by the sites app and
handed in (``Site.objects.live_counts()``), the nodes' reservations come from Swarm
(``sync_nodes``)."""

from __future__ import annotations

import pytest

from nodes.capacity import (
    PLATFORM,
    CapacityError,
    LiveSites,
    check_room_for_site,
    current_capacity,
    site_reservation,
)
from nodes.inventory import reservations_by_node
from nodes.models import Node
from sites.models import Site

# This machine kind, as Swarm reports it: 2 CPUs, 24 GiB (25,276,059,648 bytes).
TWO_CORES_24_GIB = {"cpus": 2, "memory_bytes": 25_276_059_648}


def worker(name: str, *, roles: tuple[str, ...] = ("worker",), **fields: object) -> Node:
    values: dict[str, object] = {"cpus": 8, "memory_bytes": 16 * 1024**3, **fields}
    return Node.objects.create(
        swarm_id=f"id-{name}",
        hostname=name,
        status="ready",
        availability="active",
        farm_roles=list(roles),
        **values,
    )


@pytest.mark.django_db
def test_the_live_sites_are_counted_by_the_sites_app_with_and_without_redis(tenant):
    for n, (status, cache_enabled) in enumerate(
        [("active", True), ("suspended", False), ("provisioning", False), ("deleted", True)]
    ):
        Site.objects.create(
            tenant=tenant, domain=f"s{n}.acme.test", status=status, cache_enabled=cache_enabled
        )
    assert Site.objects.live_counts() == LiveSites(cached=1, plain=2)


@pytest.mark.django_db
def test_once_nodes_are_synced_the_sites_their_tasks_showed_are_not_counted_again(tenant):
    seen = Site.objects.create(tenant=tenant, domain="seen.acme.test", status="active")
    Site.objects.create(tenant=tenant, domain="new.acme.test", status="provisioning")
    worker("w1", reserved_cpus=0.1, reserved_memory_bytes=128 * 1024**2, seen_site_ids=[seen.pk])
    assert Site.objects.live_counts() == LiveSites(
        cached=2, plain=0, unseen_cached=1, unseen_plain=0
    )


def test_the_sync_sums_each_nodes_running_reservations_and_names_their_sites():
    def task(node: str, cpu: int, mem: int, stack: str, state: str = "running") -> dict:
        return {
            "NodeID": node,
            "Status": {"State": state},
            "Spec": {
                "Resources": {"Reservations": {"NanoCPUs": cpu, "MemoryBytes": mem}},
                "ContainerSpec": {"Labels": {"com.docker.stack.namespace": stack}},
            },
        }

    loads = reservations_by_node(
        [
            task("a", 7_500_000, 96 << 20, "wp-3"),
            task("a", 1_500_000, 16 << 20, "wp-3"),
            task("a", 0, 64 << 20, "farm"),
            task("b", 7_500_000, 96 << 20, "wp-4"),
            task("b", 7_500_000, 96 << 20, "wp-5", state="failed"),
            {"NodeID": "", "Status": {"State": "pending"}, "Spec": {}},
        ]
    )
    assert (loads["a"].nano_cpus, loads["a"].memory_bytes) == (9_000_000, 176 << 20)
    assert loads["a"].site_ids == {3} and loads["b"].site_ids == {4}
    assert set(loads) == {"a", "b"}


@pytest.mark.django_db
def test_capacity_reserves_what_the_live_sites_it_is_given_reserve(worker_node, settings):
    settings.FARM_CPU_RESERVATION_SCALE = 1.0
    empty = current_capacity(LiveSites(cached=0, plain=0))
    busy = current_capacity(LiveSites(cached=2, plain=3))
    # php 96 + nginx 16 (+ redis 16) MB per site, beside the platform's reservation.
    assert empty.reserved_mb == PLATFORM.memory_mb
    assert busy.reserved_mb - empty.reserved_mb == 2 * 128 + 3 * 112
    assert busy.reserved_cpu - empty.reserved_cpu == pytest.approx(2 * 0.35 + 3 * 0.30)


@pytest.mark.django_db
def test_150_sites_fit_on_this_machine_kind_and_the_182nd_is_refused_for_memory():
    """2 cores, 24 GiB, one node with every role: 150 idle sites (the density goal)
    fit with the default CPU scale outside production; memory runs out first, after
    (24,105 MiB - 880 MiB for the platform) // 128 MiB = 181 sites."""
    worker("farm-1", roles=("edge", "worker", "db"), **TWO_CORES_24_GIB)
    assert site_reservation(cache_enabled=True).memory_mb == 128

    check_room_for_site(cache_enabled=True, live=LiveSites(cached=150, plain=0))
    check_room_for_site(cache_enabled=True, live=LiveSites(cached=180, plain=0))
    with pytest.raises(CapacityError) as refused:
        check_room_for_site(cache_enabled=True, live=LiveSites(cached=181, plain=0))
    assert str(refused.value) == (
        "No worker has room for this site's php-fpm (it reserves 96 MB of memory and "
        "0.0075 CPU): farm-1 has 57 MB of 23.5 GiB unreserved. "
        "Memory is short on farm-1: add a worker node or delete unused sites."
    )


@pytest.mark.django_db
def test_room_is_per_node_not_the_sum_of_the_nodes():
    """Two workers with 60 MB free each hold 120 MB between them, but php-fpm's 96 MB
    fit on neither: Swarm would leave the task pending."""
    for name in ("w1", "w2"):
        worker(
            name,
            memory_bytes=1024 * 1024**2,
            reserved_cpus=0.5,
            reserved_memory_bytes=(1024 - 60) * 1024**2,
            seen_site_ids=[],
        )
    live = LiveSites(cached=0, plain=0, unseen_cached=0, unseen_plain=0)
    with pytest.raises(CapacityError, match=r"php-fpm .* has 60 MB of 1.0 GiB unreserved"):
        check_room_for_site(cache_enabled=False, live=live)


@pytest.mark.django_db
def test_the_services_of_one_site_may_land_on_different_nodes():
    worker("w1", memory_bytes=1024 * 1024**2, reserved_memory_bytes=920 * 1024**2)  # 104 free
    worker("w2", memory_bytes=1024 * 1024**2, reserved_memory_bytes=984 * 1024**2)  # 40 free
    live = LiveSites(cached=0, plain=0, unseen_cached=0, unseen_plain=0)
    check_room_for_site(cache_enabled=True, live=live)  # php on w1, nginx and redis on w2
    worker("w3", memory_bytes=1024 * 1024**2, reserved_memory_bytes=1024 * 1024**2)
    with pytest.raises(CapacityError, match=r"php-fpm .* Memory is short"):
        # One more site, not yet seen by the sync, takes that room first.
        check_room_for_site(
            cache_enabled=True,
            live=LiveSites(cached=1, plain=0, unseen_cached=1, unseen_plain=0),
        )


@pytest.mark.django_db
def test_a_node_short_of_cpu_is_named_with_cpu_as_the_short_resource(settings):
    settings.FARM_CPU_RESERVATION_SCALE = 1.0
    worker("w1", cpus=1, reserved_cpus=0.9, reserved_memory_bytes=0, seen_site_ids=[])
    live = LiveSites(cached=0, plain=0, unseen_cached=0, unseen_plain=0)
    with pytest.raises(CapacityError) as refused:
        check_room_for_site(cache_enabled=False, live=live)
    assert "this site's php-fpm (it reserves 96 MB of memory and 0.25 CPU)" in str(refused.value)
    assert "w1 has 0.1 of 1 CPUs unreserved. CPU is short on w1:" in str(refused.value)


@pytest.mark.django_db
def test_no_room_is_a_capacity_error_that_says_why(worker_node, settings):
    settings.FARM_CPU_RESERVATION_SCALE = 1.0
    check_room_for_site(cache_enabled=True, live=LiveSites(cached=0, plain=0))
    with pytest.raises(CapacityError, match=r"No worker has room .* CPU is short"):
        check_room_for_site(cache_enabled=True, live=LiveSites(cached=0, plain=60))


@pytest.mark.django_db
def test_without_a_ready_worker_there_is_no_room():
    with pytest.raises(CapacityError, match="No ready worker node is known"):
        check_room_for_site(cache_enabled=False, live=LiveSites(cached=0, plain=0))
