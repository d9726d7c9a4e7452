"""Issue 11, "site services partial": the site page's services (polled every 5 s per open
tab) are read from what a worker recorded (``StackState``), never from the Swarm during
the request; the page still renders when the Swarm is gone, and says how old the
record is. The workers' reading of a real Swarm is tests/sites/test_provision_e2e.py's
(swarm-marked); here the Docker client is a fake that speaks the engine's JSON."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from farm.schedules import PERIODIC_TASKS
from nodes.swarm import STACK_LABEL, SwarmError
from sites import service_states, steps
from sites.models import Site, SiteStatus, StackState
from sites.tasks import record_service_states
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def site(tenant) -> Site:
    return Site.objects.create(tenant=tenant, domain="shop.acme.test", status="active")


@pytest.fixture
def docker_unavailable():
    """Any call to Docker fails the test: a page must not make one."""
    forbidden = mock.Mock(side_effect=AssertionError("a page asked Docker"))
    with (
        mock.patch("sites.swarm_site.client", forbidden),
        mock.patch("nodes.swarm.client", forbidden),
        mock.patch("nodes.swarm_client._client", forbidden),
    ):
        yield forbidden


def recorded(site: Site, *, seen: timedelta = timedelta(seconds=20), error: str = "") -> None:
    now = timezone.now()
    StackState.objects.create(
        site=site,
        services=[
            {
                "name": f"{site.stack_name}_nginx",
                "image": "nginx:1.27",
                "replicas": 1,
                "tasks": [{"state": "running", "desired": "running", "message": "started"}],
            }
        ],
        seen_at=now - seen,
        checked_at=now,
        error=error,
    )


def services_partial(client, site: Site):
    return client.get(reverse("site_services", args=[site.pk]), headers=HTMX)


def test_the_services_partial_reads_the_recorded_row_and_asks_no_docker(
    owner, site, docker_unavailable, django_assert_max_num_queries
):
    recorded(site)
    client = client_for(owner)
    services_partial(client, site)  # the session settles

    with django_assert_max_num_queries(6):
        response = services_partial(client, site)

    body = response.content.decode()
    assert response.status_code == 200
    assert f"{site.stack_name}_nginx" in body and "nginx:1.27" in body and "running" in body
    assert 'data-testid="services-notice"' not in body and "As the Swarm said" in body
    docker_unavailable.assert_not_called()


def test_with_docker_unavailable_the_site_page_and_partial_render_with_a_notice(
    owner, site, docker_unavailable
):
    client = client_for(owner)

    page = client.get(reverse("site_detail", args=[site.pk]))
    partial = services_partial(client, site)

    assert page.status_code == 200 and partial.status_code == 200
    body = partial.content.decode()
    assert 'data-testid="services-notice"' in body and "Not recorded yet" in body
    docker_unavailable.assert_not_called()


def test_a_stale_record_says_when_the_services_were_last_seen(owner, site, docker_unavailable):
    recorded(site, seen=timedelta(minutes=10))

    body = services_partial(client_for(owner), site).content.decode()

    assert "stopped recording" in body and "Last seen 10\xa0minutes ago" in body
    assert f"{site.stack_name}_nginx" in body, "what was last seen is still shown"


def test_when_the_swarm_does_not_answer_the_row_keeps_what_was_seen_and_says_why(
    owner, operator, site, docker_unavailable
):
    recorded(site, seen=timedelta(minutes=2))
    failing = mock.Mock(side_effect=SwarmError("The Docker Engine does not answer."))
    with mock.patch("sites.swarm_site.stack_states", failing):
        assert record_service_states() == "The Docker Engine does not answer."

    state = StackState.objects.get(site=site)
    assert state.error == "The Docker Engine does not answer." and len(state.services) == 1
    body = services_partial(client_for(operator), site).content.decode()
    assert "did not answer" in body and "does not answer" in body and "Last seen 2" in body
    assert f"{site.stack_name}_nginx" in body
    tenants_view = services_partial(client_for(owner), site).content.decode()
    assert 'data-testid="services-notice"' in tenants_view and "Last seen 2" in tenants_view
    assert "Docker Engine" not in tenants_view, "the platform's words are an operator's"


# -- the workers ---------------------------------------------------------------------


def service(sid: str, stack: str, role: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "ID": sid,
        "Spec": {
            "Name": f"{stack}_{role}",
            "Labels": {STACK_LABEL: stack},
            "Mode": {"Replicated": {"Replicas": replicas}},
            "TaskTemplate": {"ContainerSpec": {"Image": f"{role}:1@sha256:abc"}},
        },
    }


def task(tid: str, service_id: str, state: str, desired: str = "running") -> dict[str, Any]:
    return {
        "ID": tid,
        "ServiceID": service_id,
        "DesiredState": desired,
        "NodeID": "node-1",
        "CreatedAt": "2026-12-01T10:00:00.000000000Z",
        "Status": {"State": state, "Message": state, "ContainerStatus": {"ContainerID": "c"}},
    }


def fake_engine(sites: list[Site]) -> SimpleNamespace:
    """The engine's services and tasks for these sites' stacks, and the farm's own."""
    services = [service("farm-1", "farm", "traefik")]
    tasks = [task("t-farm", "farm-1", "running")]
    for site in sites:
        services.append(service(f"s{site.pk}n", site.stack_name, "nginx"))
        services.append(service(f"s{site.pk}p", site.stack_name, "php"))
        tasks.append(task(f"t{site.pk}n", f"s{site.pk}n", "running"))
        tasks.append(task(f"t{site.pk}p", f"s{site.pk}p", "running"))
        tasks.append(task(f"t{site.pk}old", f"s{site.pk}p", "shutdown", desired="shutdown"))
    api = SimpleNamespace(
        services=mock.Mock(return_value=services),
        tasks=mock.Mock(return_value=tasks),
        inspect_container=mock.Mock(side_effect=AssertionError("no inspect per task")),
    )
    return SimpleNamespace(api=api)


def make_sites(tenant, n: int) -> list[Site]:
    return [
        Site.objects.create(tenant=tenant, domain=f"s{i}.acme.test", status="active")
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [3, 30])
def test_the_minute_task_records_every_site_from_two_docker_calls(
    tenant, n, django_assert_max_num_queries
):
    sites = make_sites(tenant, n)
    gone = Site.objects.create(tenant=tenant, domain="gone.acme.test", status="deleted")
    StackState.objects.create(site=gone, checked_at=timezone.now())
    engine = fake_engine(sites)

    with (
        mock.patch("sites.swarm_site.client", return_value=engine),
        django_assert_max_num_queries(6),  # constant in the number of sites
    ):
        assert record_service_states() == f"{n} sites recorded"

    assert engine.api.services.call_count == 1 and engine.api.tasks.call_count == 1
    states = {s.site_id: s for s in StackState.objects.all()}
    assert set(states) == {s.pk for s in sites}, "a deleted site's row goes"
    first = states[sites[0].pk]
    assert [s["name"] for s in first.services] == [
        f"{sites[0].stack_name}_nginx",
        f"{sites[0].stack_name}_php",
    ]
    php = first.services[1]
    assert php["image"] == "php:1" and php["replicas"] == 1
    assert [t["task_id"] for t in php["tasks"]] == [f"t{sites[0].pk}p"], "not the old task"
    assert first.seen_at is not None and first.error == ""


def test_the_minute_task_overwrites_what_it_recorded_before(site):
    recorded(site, seen=timedelta(minutes=30), error="The Docker Engine does not answer.")
    with mock.patch("sites.swarm_site.client", return_value=fake_engine([site])):
        record_service_states()

    state = StackState.objects.get(site=site)
    assert state.error == "" and state.seen_at is not None
    assert timezone.now() - state.seen_at < timedelta(minutes=1)
    assert len(state.services) == 2


def test_the_services_are_recorded_every_minute():
    task = next(t for t in PERIODIC_TASKS if t.func == "sites.tasks.record_service_states")
    assert task.minutes == 1


class FakeContext:
    """What a step needs of its context, for a step run on its own."""

    def __init__(self, site: Site) -> None:
        self._site = site
        self.lines: list[str] = []

    def refresh_target(self) -> Site:
        return self._site

    def log(self, message: str) -> None:
        self.lines.append(message)


@pytest.mark.parametrize("step", [steps.ScaleDown(), steps.ScaleUp()], ids=lambda s: s.name)
def test_a_step_that_changes_the_stack_records_its_services_right_after(site, step):
    engine = fake_engine([site])
    with (
        mock.patch("sites.swarm_site.scale_stack", return_value=["scaled"]),
        mock.patch("sites.swarm_site.client", return_value=engine),
    ):
        step.run(FakeContext(site))

    state = StackState.objects.get(site=site)
    assert {s["name"] for s in state.services} == {
        f"{site.stack_name}_nginx",
        f"{site.stack_name}_php",
    }


def test_a_step_still_succeeds_when_recording_fails(site):
    failing = mock.Mock(side_effect=SwarmError("The Docker Engine does not answer."))
    with (
        mock.patch("sites.swarm_site.scale_stack", return_value=["scaled"]),
        mock.patch("sites.swarm_site.stack_states", failing),
    ):
        steps.ScaleDown().run(FakeContext(site))  # type: ignore[arg-type]

    assert not StackState.objects.exists(), "nothing seen, nothing recorded"
    assert service_states.notice(None).startswith("Not recorded yet")


def test_a_suspended_sites_row_stays_recorded(tenant):
    suspended = Site.objects.create(
        tenant=tenant, domain="asleep.acme.test", status=SiteStatus.SUSPENDED
    )
    with mock.patch("sites.swarm_site.client", return_value=fake_engine([suspended])):
        record_service_states()
    assert StackState.objects.filter(site=suspended).exists()
