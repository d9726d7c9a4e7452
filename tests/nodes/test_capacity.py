"""Is there room for one more site? nodes counts its workers; the live sites are
counted by the sites app and handed in (``Site.objects.live_counts()``)."""

from __future__ import annotations

import pytest

from nodes.capacity import CapacityError, LiveSites, check_room_for_site, current_capacity
from sites.models import Site


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
def test_capacity_reserves_what_the_live_sites_it_is_given_reserve(worker_node, settings):
    settings.FARM_CPU_RESERVATION_SCALE = 1.0
    empty = current_capacity(LiveSites(cached=0, plain=0))
    busy = current_capacity(LiveSites(cached=2, plain=3))
    # php 192 + nginx 32 (+ redis 32) MB per site, beside the platform's reservation.
    assert busy.reserved_mb - empty.reserved_mb == 2 * 256 + 3 * 224
    assert busy.reserved_cpu - empty.reserved_cpu == pytest.approx(2 * 0.35 + 3 * 0.30)


@pytest.mark.django_db
def test_no_room_is_a_capacity_error_that_says_why(worker_node, settings):
    settings.FARM_CPU_RESERVATION_SCALE = 1.0
    check_room_for_site(cache_enabled=True, live=LiveSites(cached=0, plain=0))
    with pytest.raises(CapacityError, match="No worker has room"):
        check_room_for_site(cache_enabled=True, live=LiveSites(cached=0, plain=60))


@pytest.mark.django_db
def test_without_a_ready_worker_there_is_no_room():
    with pytest.raises(CapacityError, match="No ready worker node is known"):
        check_room_for_site(cache_enabled=False, live=LiveSites(cached=0, plain=0))
