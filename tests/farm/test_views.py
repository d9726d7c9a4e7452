"""Pages of the shell: login, dashboard, operations, scoping of every object page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from backups.models import Backup
from farm.models import AuditEvent, Operation, OperationStatus
from farm.operations import start_operation
from farm.runner import run_operation
from monitoring.models import Alert
from sites.models import Site
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(tenant) -> Site:
    return Site.objects.create(tenant=tenant, domain="shop.acme.test", status="active")


@pytest.fixture
def site_operation(site, tmp_path) -> Operation:
    return start_operation(
        "test.recorded",
        target_type="test",
        target_id=f"site-{site.pk}",
        target_repr=site.domain,
        tenant=site.tenant,
        params={"journal": str(tmp_path / "journal")},
    )


@pytest.fixture
def backup(site) -> Backup:
    return Backup.objects.create(site=site, kind="db", status="succeeded", snapshot_id="abc123")


def test_login_page_is_served_and_signup_is_closed(client: Client):
    response = client.get(reverse("account_login"))
    assert response.status_code == 200
    assert b'name="login"' in response.content and b'name="password"' in response.content
    signup = client.get(reverse("account_signup"))
    assert b"Sign Up Closed" in signup.content or signup.status_code in (403, 404)


def test_email_login_reaches_the_dashboard(client: Client, owner):
    response = client.post(
        reverse("account_login"), {"login": owner.email, "password": PASSWORD}, follow=True
    )
    assert response.status_code == 200
    assert response.resolver_match.url_name == "dashboard"
    assert owner.email.encode() in response.content


def test_anonymous_visitors_are_sent_to_login(client: Client):
    for name in ("dashboard", "site_list", "backup_list", "alert_list", "operation_list"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


def test_dashboard_counts_only_the_users_own_tenant(owner, outsider, site, backup, other_tenant):
    Site.objects.create(tenant=other_tenant, domain="globex.test", status="active")
    Alert.objects.create(
        fingerprint="x",
        name="SiteDown",
        summary="down",
        site=site,
        tenant=site.tenant,
        started_at=site.created_at,
        last_seen_at=site.created_at,
    )
    response = client_for(owner).get(reverse("dashboard"))
    assert response.status_code == 200
    assert response.context["site_total"] == 1
    assert response.context["backups_ok_24h"] == 1
    assert response.context["alerts_firing"] == 1
    assert "nodes_total" not in response.context, "nodes are for operators"

    outsider_view = client_for(outsider).get(reverse("dashboard"))
    assert outsider_view.context["site_total"] == 1
    assert outsider_view.context["alerts_firing"] == 0


def test_the_dashboard_counts_live_sites_by_status_not_deleted_ones(owner, operator, tenant):
    for domain, status in (("a.acme.test", "active"), ("b.acme.test", "suspended")):
        Site.objects.create(tenant=tenant, domain=domain, status=status)
    Site.objects.create(tenant=tenant, domain="gone.acme.test", status="deleted")
    for user in (owner, operator):
        context = client_for(user).get(reverse("dashboard")).context
        assert context["site_total"] == 2
        assert context["sites_by_status"] == [("active", 1), ("suspended", 1)]


def test_operators_see_every_tenant(operator, site, other_tenant):
    Site.objects.create(tenant=other_tenant, domain="globex.test", status="active")
    response = client_for(operator).get(reverse("dashboard"))
    assert response.context["site_total"] == 2
    assert "nodes_total" in response.context


@pytest.mark.parametrize("page", ["site_detail", "operation_detail", "backup_detail"])
def test_another_tenants_objects_are_404(page, outsider, owner, site, site_operation, backup):
    pk = {
        "site_detail": site.pk,
        "operation_detail": site_operation.pk,
        "backup_detail": backup.pk,
    }[page]
    assert client_for(owner).get(reverse(page, args=[pk])).status_code == 200
    assert client_for(outsider).get(reverse(page, args=[pk])).status_code == 404


def test_lists_never_show_another_tenants_rows(outsider, site, site_operation, backup):
    client = client_for(outsider)
    assert site.domain.encode() not in client.get(reverse("site_list")).content
    assert list(client.get(reverse("operation_list")).context["page"].object_list) == []
    assert list(client.get(reverse("backup_list")).context["page"].object_list) == []


def test_operator_only_pages_refuse_tenants(owner, operator):
    for name in ("node_list", "audit_log"):
        assert client_for(owner).get(reverse(name)).status_code == 403
        assert client_for(operator).get(reverse(name)).status_code == 200


def test_operation_page_shows_steps_and_polls_while_unfinished(owner, site_operation):
    client = client_for(owner)
    url = reverse("operation_detail", args=[site_operation.pk])
    page = client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'hx-trigger="every 1s"' in body
    assert body.count('class="step step-pending"') == 4

    partial = client.get(
        url, headers={"HX-Request": "true", "HX-Target": f"operation-{site_operation.pk}"}
    )
    assert partial.status_code == 200
    assert "<html" not in partial.content.decode(), "htmx gets the partial only"


def test_finished_operation_partial_stops_polling_with_286(owner, site_operation):
    run_operation(site_operation.pk)
    response = client_for(owner).get(
        reverse("operation_detail", args=[site_operation.pk]),
        headers={"HX-Request": "true", "HX-Target": f"operation-{site_operation.pk}"},
    )
    assert response.status_code == 286
    body = response.content.decode()
    assert "hx-trigger" not in body
    assert body.count("step-succeeded") == 4


def test_owner_can_retry_a_failed_operation_and_it_is_audited(owner, site, tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    operation = start_operation(
        "test.recorded",
        target_type="test",
        target_id="r",
        tenant=site.tenant,
        params={"journal": str(tmp_path / "j"), "fail_while_exists": {"alpha": str(flag)}},
    )
    run_operation(operation.pk)
    response = client_for(owner).post(reverse("operation_retry", args=[operation.pk]))
    assert response.status_code == 302
    operation.refresh_from_db()
    assert operation.status == OperationStatus.QUEUED
    event = AuditEvent.objects.get(action="operation.retry")
    assert event.actor == owner and event.tenant == site.tenant


def test_members_may_look_but_not_change(member, site, tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    operation = start_operation(
        "test.recorded",
        target_type="test",
        target_id="m",
        tenant=site.tenant,
        params={"journal": str(tmp_path / "j"), "fail_while_exists": {"alpha": str(flag)}},
    )
    run_operation(operation.pk)
    client = client_for(member)
    assert client.get(reverse("operation_detail", args=[operation.pk])).status_code == 200
    for action in ("operation_retry", "operation_roll_back"):
        assert client.post(reverse(action, args=[operation.pk])).status_code == 403
    operation.refresh_from_db()
    assert operation.status == OperationStatus.FAILED


def test_outsiders_cannot_act_on_operations(outsider, site_operation):
    for action in ("operation_retry", "operation_roll_back", "operation_cancel"):
        response = client_for(outsider).post(reverse(action, args=[site_operation.pk]))
        assert response.status_code == 404


def test_actions_require_post(owner, site_operation):
    for action in ("operation_retry", "operation_roll_back", "operation_cancel"):
        response = client_for(owner).get(reverse(action, args=[site_operation.pk]))
        assert response.status_code == 405


def test_cancel_from_the_page(owner, site_operation):
    response = client_for(owner).post(
        reverse("operation_cancel", args=[site_operation.pk]), follow=True
    )
    assert response.status_code == 200
    site_operation.refresh_from_db()
    assert site_operation.status == OperationStatus.CANCELLED
    assert AuditEvent.objects.filter(action="operation.cancel").count() == 1


def test_pages_carry_csrf_in_hx_headers_and_vendored_htmx(owner):
    body = client_for(owner).get(reverse("dashboard")).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert "/static/vendor/htmx/htmx-2.0.11.min.js" in body
    assert "unpkg" not in body and "cdn" not in body.lower()
