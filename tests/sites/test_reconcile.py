"""Reconcile is the operation ``site.reconcile``: the page starts it and follows it on the
operation's page, the schedule starts the same one, one runs at a time, only operators
start it, and its report stays readable. Swarm, MariaDB and Traefik's routes are
replaced by their seams here (``sites.reconcile.find_drift`` / ``restore_routes``);
what they find on a real farm is tests/sites/test_provision_e2e.py's."""

from __future__ import annotations

from unittest import mock

import pytest
from django.urls import reverse

from farm.models import AuditEvent, Operation, OperationStatus
from farm.runner import run_operation
from farm.schedules import PERIODIC_TASKS
from nodes.swarm import SwarmError
from sites.models import ReconcileReport
from sites.reconcile import Finding
from sites.tasks import reconcile_sites
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

DRIFT = Finding("drift", "service wp-7_php", "shop.acme.test has no such service", 7)
ORPHAN = Finding("orphan", "route wp-9", "belonged to no live site: removed", 9)


@pytest.fixture
def no_docker_in_the_request():
    """Starting a reconcile asks nothing outside: the worker does that."""
    forbidden = mock.Mock(side_effect=AssertionError("the request reached an external system"))
    with (
        mock.patch("sites.reconcile.find_drift", forbidden),
        mock.patch("sites.reconcile.restore_routes", forbidden),
        mock.patch("nodes.swarm.client", forbidden),
    ):
        yield


@pytest.fixture
def seams():
    """What the worker's comparison finds (the real one needs the farm)."""
    with (
        mock.patch("sites.steps.reconcile.restore_routes", return_value=[ORPHAN]) as routes,
        mock.patch("sites.steps.reconcile.find_drift", return_value=[DRIFT]) as drift,
    ):
        yield {"routes": routes, "drift": drift}


def test_compare_now_starts_a_reconcile_operation_and_redirects_to_its_page(
    operator, no_docker_in_the_request
):
    response = client_for(operator).post(reverse("site_reconcile_run"))

    operation = Operation.objects.get()
    assert operation.kind == "site.reconcile"
    assert operation.status == OperationStatus.QUEUED and operation.actor == operator
    assert response.status_code == 302
    assert response["Location"] == reverse("operation_detail", args=[operation.pk])
    assert [s.name for s in operation.steps.order_by("position")] == [
        "routes",
        "compare",
        "report",
    ]
    assert not ReconcileReport.objects.exists(), "nothing is compared during the request"
    assert AuditEvent.objects.filter(action="site.reconcile", actor=operator).exists()


@pytest.mark.parametrize("who", ["member", "owner", "outsider"])
def test_a_tenant_member_or_owner_cannot_start_a_reconcile(who, request):
    user = request.getfixturevalue(who)
    client = client_for(user)

    assert client.post(reverse("site_reconcile_run")).status_code == 403
    assert client.get(reverse("site_reconcile")).status_code == 403
    assert not Operation.objects.exists()


def test_a_tenant_cannot_see_the_reconcile_operation(operator, owner):
    client_for(operator).post(reverse("site_reconcile_run"))
    operation = Operation.objects.get()

    page = client_for(owner).get(reverse("operation_detail", args=[operation.pk]))
    assert page.status_code == 404


def test_only_one_reconcile_runs_at_a_time(operator, no_docker_in_the_request):
    client = client_for(operator)
    client.post(reverse("site_reconcile_run"))
    first = Operation.objects.get()

    again = client.post(reverse("site_reconcile_run"))
    assert again["Location"] == reverse("operation_detail", args=[first.pk]), "the running one"
    assert "already has an unfinished operation" in reconcile_sites(), "the schedule waits too"
    assert Operation.objects.count() == 1

    page = client.get(reverse("site_reconcile")).content.decode()
    assert 'data-testid="reconcile-running"' in page and f"#{first.pk}" in page
    assert "Compare now" not in page


def test_the_schedule_starts_the_same_operation(no_docker_in_the_request):
    assert reconcile_sites().startswith("operation ")

    operation = Operation.objects.get()
    assert operation.kind == "site.reconcile" and operation.actor is None
    assert operation.tenant is None, "the cluster's: operators only"


def test_the_reconcile_schedule_names_the_task_that_starts_the_operation():
    task = next(t for t in PERIODIC_TASKS if "reconcile" in t.name)
    assert task.func == "sites.tasks.reconcile_sites" and task.minutes == 10


def test_the_operation_keeps_a_report_readable_from_the_drift_page(operator, seams):
    client = client_for(operator)
    client.post(reverse("site_reconcile_run"))
    operation = Operation.objects.get()

    assert run_operation(operation.pk) == OperationStatus.SUCCEEDED

    report = ReconcileReport.objects.get()
    assert (report.drift, report.orphans, report.error) == (1, 1, "")
    operation.refresh_from_db()
    assert operation.state["report"] == report.pk
    log = operation.steps.get(name="compare").log
    assert "drift: service wp-7_php: shop.acme.test has no such service" in log
    assert f"report #{report.pk}" in operation.steps.get(name="report").log
    page = client.get(reverse("site_reconcile")).content.decode()
    assert "service wp-7_php" in page and "route wp-9" in page
    assert 'data-testid="drift">1<' in page and "Compare now" in page


def test_a_comparison_that_fails_keeps_a_report_that_says_why(operator, seams):
    seams["drift"].side_effect = SwarmError("The Docker Engine does not answer.", retryable=True)
    client = client_for(operator)
    client.post(reverse("site_reconcile_run"))
    operation = Operation.objects.get()

    assert run_operation(operation.pk) == OperationStatus.FAILED

    report = ReconcileReport.objects.get()
    assert "does not answer" in report.error
    assert report.orphans == 1, "what the routes step found is kept"
    page = client.get(reverse("site_reconcile")).content.decode()
    assert "could not be made in full" in page and "does not answer" in page
    assert "Compare now" in page, "a failed one no longer blocks the next"
    body = client.get(reverse("operation_detail", args=[operation.pk])).content.decode()
    assert "Retry from failed step" in body and "Roll back" not in body
