"""Without a Docker Engine the panel still works and says plainly why it cannot provision."""

from __future__ import annotations

import pytest
from django.urls import reverse

from farm import context_processors
from nodes.bootstrap import farm_up
from nodes.swarm import SwarmError, engine_status, reset_client_cache
from tests.conftest import client_for


@pytest.fixture
def no_engine(settings):
    settings.DOCKER_HOST = "tcp://127.0.0.1:9"  # nothing listens on the discard port
    settings.FARM_DOCKER_TIMEOUT = 5
    reset_client_cache()
    context_processors._banner_cache = (0.0, "")
    yield
    reset_client_cache()
    context_processors._banner_cache = (0.0, "")


def test_engine_status_explains_what_to_do(no_engine):
    available, why = engine_status()
    assert not available
    assert "does not answer" in why and "DOCKER_HOST" in why


def test_farm_up_fails_with_a_clear_error(no_engine):
    with pytest.raises(SwarmError) as excinfo:
        farm_up(start_engine=True, progress=lambda m: None)
    assert "does not answer" in excinfo.value.message
    assert excinfo.value.retryable


@pytest.mark.django_db
def test_pages_show_a_banner_when_provisioning_is_unavailable(no_engine, owner):
    body = client_for(owner).get(reverse("dashboard")).content.decode()
    assert "Provisioning is unavailable" in body
    assert "does not answer" in body


def test_capacity_constants_match_what_the_stacks_reserve():
    from nodes.capacity import PLATFORM, SITE_SERVICES
    from nodes.platform import SECRET_FILES, service_defs
    from sites.maintenance import maintenance_service

    platform = [*service_defs({name: "x" for name in SECRET_FILES}), maintenance_service({})]
    assert PLATFORM.cpu == pytest.approx(sum(s.cpu_reservation or 0 for s in platform))
    assert PLATFORM.memory_mb == sum(s.mem_reservation_mb or 0 for s in platform)
    assert set(SITE_SERVICES) == {"php", "nginx", "redis"}
