"""Without a Docker Engine the panel still works and says plainly why it cannot provision."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from nodes.bootstrap import farm_up
from nodes.swarm import SwarmError, engine_status, reset_client_cache
from tests.conftest import client_for


@pytest.fixture
def no_engine(settings):
    settings.DOCKER_HOST = "tcp://127.0.0.1:9"  # nothing listens on the discard port
    settings.FARM_DOCKER_TIMEOUT = 5
    reset_client_cache()
    yield
    reset_client_cache()


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
    from nodes.tasks import sync_node_inventory

    sync_node_inventory()  # what the workers do every minute
    body = client_for(owner).get(reverse("dashboard")).content.decode()
    assert "Provisioning is unavailable" in body
    assert "does not answer" in body


@pytest.mark.django_db
def test_before_the_workers_report_the_banner_says_so_and_the_page_asks_no_docker(
    owner, monkeypatch
):
    from nodes.models import EngineStatus

    def no_docker_from_the_web(*args, **kwargs):
        raise AssertionError("the web process asked Docker")

    monkeypatch.setattr("nodes.swarm_client._client", no_docker_from_the_web)

    body = client_for(owner).get(reverse("dashboard")).content.decode()

    assert "the workers have not reported on the Swarm yet" in body
    assert "qcluster" in body
    assert not EngineStatus.objects.exists(), "a page render records nothing"


@pytest.mark.django_db
def test_the_first_page_after_start_asks_no_docker_and_writes_nothing(owner, monkeypatch):
    from nodes.inventory import record_engine_status

    def no_docker_from_the_web(*args, **kwargs):
        raise AssertionError("the web process asked Docker")

    monkeypatch.setattr("nodes.swarm_client._client", no_docker_from_the_web)
    monkeypatch.setattr("nodes.swarm.engine_status", no_docker_from_the_web)
    client = client_for(owner)
    record_engine_status(False, "The Docker Engine does not answer.")

    with CaptureQueriesContext(connection) as queries:
        body = client.get(reverse("dashboard")).content.decode()

    assert "Provisioning is unavailable" in body and "does not answer" in body
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))
    ]
    assert writes == [], "a page render writes nothing (not even the shared cache table)"
    engine_reads = [q for q in queries.captured_queries if "nodes_enginestatus" in q["sql"]]
    assert len(engine_reads) == 1, "one read of the row the workers recorded"
    record_engine_status(True)
    assert "Provisioning is" not in client.get(reverse("dashboard")).content.decode(), "at once"


def test_capacity_constants_match_what_the_stacks_reserve():
    from nodes.capacity import PLATFORM, SITE_SERVICES
    from nodes.platform import SECRET_FILES, service_defs
    from sites.maintenance import maintenance_service

    platform = [*service_defs({name: "x" for name in SECRET_FILES}), maintenance_service()]
    assert PLATFORM.cpu == pytest.approx(sum(s.cpu_reservation or 0 for s in platform))
    assert PLATFORM.memory_mb == sum(s.mem_reservation_mb or 0 for s in platform)
    assert set(SITE_SERVICES) == {"php", "nginx", "redis"}


@pytest.mark.django_db
def test_the_banner_shows_what_the_workers_recorded_without_asking_docker(owner, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from nodes.inventory import record_engine_status
    from nodes.models import EngineStatus

    def no_docker_from_the_web(*args, **kwargs):
        raise AssertionError("the web process asked Docker")

    monkeypatch.setattr("nodes.swarm.engine_status", no_docker_from_the_web)
    client = client_for(owner)

    def banner() -> str:
        body = client.get(reverse("dashboard")).content.decode()
        return body.split('role="status">')[1].split("</div>")[0] if 'role="status"' in body else ""

    record_engine_status(True)
    assert banner() == ""
    record_engine_status(False, "The Docker Engine does not answer.")
    assert "Provisioning is unavailable: The Docker Engine does not answer." in banner()
    record_engine_status(True)
    EngineStatus.objects.update(checked_at=timezone.now() - timedelta(minutes=20))
    assert "the workers last reported on the Swarm" in banner()
    assert "qcluster" in banner()


@pytest.mark.django_db
def test_the_minute_task_records_the_engine_status(no_engine):
    from nodes.models import EngineStatus
    from nodes.tasks import sync_node_inventory

    assert sync_node_inventory().startswith("skipped")
    status = EngineStatus.objects.get()
    assert not status.available and "does not answer" in status.message


# Issue 9, item 20: an earlier swarm left with `swarm leave --force` while its
# services ran strands VXLAN interfaces; every task of the next farm is rejected.
# Docker 20.10's words, as its task status shows them (seen here, reproduced with a
# stray VXLAN interface: tests/nodes/test_farm.py::test_item20_...).
STALE_VXLAN_TASK_ERROR = (
    'network sandbox join failed: subnet sandbox join failed for "10.201.0.0/24": '
    "error creating vxlan interface: file exists"
)


def test_item20_farm_up_recognises_stale_overlay_state_and_names_the_fix():
    from nodes.swarm import StaleOverlayState
    from nodes.swarm_tasks import stale_overlay_error

    error = stale_overlay_error("farm_mariadb", f"rejected: {STALE_VXLAN_TASK_ERROR}")

    assert isinstance(error, StaleOverlayState) and isinstance(error, SwarmError)
    assert STALE_VXLAN_TASK_ERROR in error.message, "Swarm's own words"
    assert "manage.py farm_down --reset-engine" in error.message
    assert not error.retryable
    assert stale_overlay_error("farm_mariadb", "rejected: No such image: x") is None


def test_item20_farm_down_offers_the_engine_reset():
    from nodes.management.commands.farm_down import Command

    parser = Command().create_parser("manage.py", "farm_down")
    assert parser.parse_args(["--reset-engine"]).reset_engine
    assert "--reset-engine" in parser.format_help()
