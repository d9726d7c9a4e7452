"""Site list and detail, and the actions' permissions (no Swarm needed: operations are
only created and enqueued here)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from farm.models import AuditEvent, Operation
from sites.models import Site, SiteStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(tenant) -> Site:
    return Site.objects.create(tenant=tenant, domain="shop.acme.test", status="active")


def test_list_search_filter_and_pagination(owner, tenant):
    for i in range(30):
        Site.objects.create(tenant=tenant, domain=f"s{i:02}.acme.test", status="active")
    Site.objects.create(tenant=tenant, domain="gone.acme.test", status="deleted")
    client = client_for(owner)
    page1 = client.get(reverse("site_list"))
    assert page1.context["page"].paginator.count == 30, "deleted sites are not listed"
    assert len(page1.context["page"].object_list) == 25
    assert client.get(reverse("site_list"), {"q": "s07"}).context["page"].paginator.count == 1
    deleted = client.get(reverse("site_list"), {"status": "deleted"})
    assert [s.domain for s in deleted.context["page"].object_list] == ["gone.acme.test"]
    rows = client.get(
        reverse("site_list"), {"q": "s1"}, headers={"HX-Request": "true", "HX-Target": "site-rows"}
    )
    assert "<html" not in rows.content.decode() and "s15.acme.test" in rows.content.decode()


def test_list_polls_only_while_a_site_is_changing(owner, site):
    client = client_for(owner)
    assert 'hx-trigger="every 3s"' not in client.get(reverse("site_list")).content.decode()
    Site.objects.filter(pk=site.pk).update(status=SiteStatus.PROVISIONING)
    assert 'hx-trigger="every 3s"' in client.get(reverse("site_list")).content.decode()


def test_detail_shows_url_tenant_and_live_region(owner, site):
    body = client_for(owner).get(reverse("site_detail", args=[site.pk])).content.decode()
    assert site.url in body and "Acme" in body and f"wp-{site.pk}" in body
    live = client_for(owner).get(
        reverse("site_detail", args=[site.pk]),
        headers={"HX-Request": "true", "HX-Target": f"site-{site.pk}-live"},
    )
    assert live.status_code == 286, "nothing running: polling stops"


def test_other_tenants_site_pages_are_404(outsider, site):
    client = client_for(outsider)
    for name in ("site_detail", "site_services", "site_delete"):
        assert client.get(reverse(name, args=[site.pk])).status_code == 404
    for name in ("site_suspend", "site_resume", "site_repair"):
        assert client.post(reverse(name, args=[site.pk])).status_code == 404


def test_members_cannot_change_sites(member, site):
    client = client_for(member)
    assert client.get(reverse("site_detail", args=[site.pk])).status_code == 200
    assert client.post(reverse("site_suspend", args=[site.pk])).status_code == 403
    assert client.get(reverse("site_delete", args=[site.pk])).status_code == 403
    assert not Operation.objects.exists()


def test_owner_suspends_and_it_is_audited(owner, site):
    response = client_for(owner).post(reverse("site_suspend", args=[site.pk]))
    assert response.status_code == 302
    operation = Operation.objects.get()
    assert operation.kind == "site.suspend"
    assert [s.name for s in operation.steps.all()] == [
        "pause_monitoring",
        "maintenance_on",
        "scale_down",
    ]
    assert AuditEvent.objects.filter(action="site.suspend").count() == 1


def test_a_second_action_while_one_runs_is_refused_clearly(owner, site):
    client = client_for(owner)
    client.post(reverse("site_suspend", args=[site.pk]))
    response = client.post(reverse("site_suspend", args=[site.pk]), follow=True)
    assert "already has an unfinished operation" in response.content.decode()
    assert Operation.objects.count() == 1


def test_delete_needs_the_domain_typed(owner, site):
    client = client_for(owner)
    wrong = client.post(reverse("site_delete", args=[site.pk]), {"confirm_domain": "nope"})
    assert wrong.status_code == 200
    assert wrong.context["form"].errors["confirm_domain"]
    assert not Operation.objects.exists()
    right = client.post(
        reverse("site_delete", args=[site.pk]), {"confirm_domain": "SHOP.acme.test"}
    )
    assert right.status_code == 302
    site.refresh_from_db()
    assert site.status == SiteStatus.DELETING
    operation = Operation.objects.get()
    assert operation.params == {"purge": False}
    assert AuditEvent.objects.filter(action="site.delete").exists()


def test_only_operators_may_purge_and_purging_is_audited(owner, operator, site):
    form = client_for(owner).get(reverse("site_delete", args=[site.pk])).context["form"]
    assert "purge" not in form.fields
    client_for(operator).post(
        reverse("site_delete", args=[site.pk]), {"confirm_domain": site.domain, "purge": "on"}
    )
    assert Operation.objects.get().params == {"purge": True}
    assert AuditEvent.objects.filter(action="site.delete.purge", actor=operator).exists()


def test_repair_is_for_operators(owner, operator, site):
    assert client_for(owner).post(reverse("site_repair", args=[site.pk])).status_code == 403
    assert client_for(operator).post(reverse("site_repair", args=[site.pk])).status_code == 302
    assert Operation.objects.get().kind == "site.repair"


def test_reconcile_page_is_for_operators(owner, operator):
    assert client_for(owner).get(reverse("site_reconcile")).status_code == 403
    assert client_for(operator).get(reverse("site_reconcile")).status_code == 200


def test_a_failed_repair_offers_retry_but_never_roll_back(operator, site):
    from farm.errors import OperationStateError
    from farm.operations import roll_back_operation

    client_for(operator).post(reverse("site_repair", args=[site.pk]))
    operation = Operation.objects.get()
    Operation.objects.filter(pk=operation.pk).update(status="failed", lock_key=None)
    operation.refresh_from_db()
    assert operation.can_retry() and not operation.can_roll_back()
    with pytest.raises(OperationStateError, match="cannot be rolled back"):
        roll_back_operation(operation)
    page = client_for(operator).get(reverse("operation_detail", args=[operation.pk]))
    assert "Roll back" not in page.content.decode()
