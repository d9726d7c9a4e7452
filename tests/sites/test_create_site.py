"""The New site form and create_site: validation, quota, room, tenancy, races."""

from __future__ import annotations

import re
import threading
from unittest import mock

import pytest
from django.db import connection
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm.errors import QuotaExceeded
from farm.models import AuditEvent, Operation, Tenant, User
from nodes.capacity import CapacityError
from sites import services
from sites.domains import DOMAIN_PATTERN
from sites.models import Site, SiteStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def post_site(client, tenant, domain, **extra):
    data = {
        "domain": domain,
        "tenant": tenant.pk,
        "image_choice": "php8.2",
        "cache_enabled": "on",
        **extra,
    }
    return client.post(reverse("site_create"), data)


def test_operator_creates_a_site_and_provisioning_starts(operator, tenant, worker_node):
    response = post_site(client_for(operator), tenant, "Shop.Example.COM.")
    site = Site.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("site_detail", args=[site.pk])
    assert site.domain == "shop.example.com"
    assert site.status == SiteStatus.PROVISIONING
    operation = Operation.objects.get()
    assert (operation.kind, operation.target_id, operation.tenant) == (
        "site.provision",
        str(site.pk),
        tenant,
    )
    assert [s.name for s in operation.steps.all()] == [
        "allocate",
        "database",
        "files",
        "swarm",
        "converge",
        "dns",
        "reachable",
        "monitoring",
        "backups",
    ]
    assert AuditEvent.objects.filter(action="site.create", target_id=str(site.pk)).exists()


def test_tenant_owner_creates_for_own_tenant_only(owner, tenant, other_tenant, worker_node):
    client = client_for(owner)
    refused = post_site(client, other_tenant, "theirs.example.com")
    assert refused.status_code == 200
    assert "tenant" in refused.context["form"].errors
    assert post_site(client, tenant, "mine.example.com").status_code == 302
    assert Site.objects.get().tenant == tenant


def test_members_cannot_create_sites(member, tenant, worker_node):
    response = post_site(client_for(member), tenant, "member.example.com")
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Site.objects.exists()


@pytest.mark.parametrize("variant", ["SHOP.example.com", "shop.example.com.", " shop.EXAMPLE.com"])
def test_an_existing_domain_in_any_case_is_a_field_error(operator, tenant, worker_node, variant):
    Site.objects.create(tenant=tenant, domain="shop.example.com", status="active")
    response = post_site(client_for(operator), tenant, variant)
    assert response.status_code == 200
    assert response.context["form"].errors["domain"] == [
        "shop.example.com is already a site on this farm."
    ]
    assert Site.objects.count() == 1


def test_an_idn_variant_of_an_existing_site_is_the_same_site(operator, tenant, worker_node):
    Site.objects.create(tenant=tenant, domain="xn--bcher-kva.example", status="active")
    response = post_site(client_for(operator), tenant, "BÜCHER.example")
    assert "already a site" in response.context["form"].errors["domain"][0]


def test_a_deleted_sites_domain_can_be_used_again(operator, tenant, worker_node):
    Site.objects.create(tenant=tenant, domain="again.example.com", status="deleted")
    assert post_site(client_for(operator), tenant, "again.example.com").status_code == 302
    assert Site.objects.filter(domain="again.example.com").count() == 2


def test_quota_is_enforced_with_a_clear_message(owner, tenant, worker_node):
    tenant.site_quota = 1
    tenant.save()
    Site.objects.create(tenant=tenant, domain="one.example.com", status="active")
    response = post_site(client_for(owner), tenant, "two.example.com")
    assert response.status_code == 200
    assert "already has 1 of its 1 sites" in str(response.context["form"].non_field_errors())
    with pytest.raises(QuotaExceeded):
        services.create_site(
            tenant=tenant,
            domain="two.example.com",
            image_choice="php8.2",
            cache_enabled=False,
            actor=owner,
        )


def test_a_site_no_worker_has_room_for_is_refused_with_why(operator, tenant, worker_node):
    worker_node.memory_bytes = 900 * 1024**2  # all but 20 MB held by the platform
    worker_node.save()
    response = post_site(client_for(operator), tenant, "big.example.com")
    assert response.status_code == 200
    assert "No worker has room" in str(response.context["form"].non_field_errors())
    assert not Site.objects.exists()


def test_cpu_reservations_count_too(operator, tenant, worker_node, settings):
    settings.FARM_CPU_RESERVATION_SCALE = 1.0
    worker_node.cpus = 1  # the platform reserves 0.35, each site 0.35
    worker_node.save()
    Site.objects.create(tenant=tenant, domain="one.example.com", status="active")
    with pytest.raises(CapacityError, match="CPUs"):
        services.create_site(
            tenant=tenant,
            domain="two.example.com",
            image_choice="php8.2",
            cache_enabled=True,
            actor=operator,
        )


def test_no_known_worker_is_refused(operator, tenant):
    with pytest.raises(CapacityError, match="No ready worker node is known"):
        services.create_site(
            tenant=tenant,
            domain="x.example.com",
            image_choice="php8.2",
            cache_enabled=True,
            actor=operator,
        )


def test_anonymous_is_sent_to_login_and_wrong_methods_are_405(client, operator, tenant):
    assert client.get(reverse("site_create")).status_code == 302
    site = Site.objects.create(tenant=tenant, domain="m.example.com", status="active")
    ops = client_for(operator)
    assert ops.put(reverse("site_create")).status_code == 405
    for name in ("site_suspend", "site_resume", "site_repair"):
        assert ops.get(reverse(name, args=[site.pk])).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_submissions_give_one_site_and_one_clear_error(
    operator, tenant, worker_node
):
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def submit() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(
                services.create_site(
                    tenant=tenant,
                    domain="race.example.com",
                    image_choice="php8.2",
                    cache_enabled=True,
                    actor=operator,
                )
            )
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    created = [o for o in outcomes if isinstance(o, services.Created)]
    refused = [o for o in outcomes if isinstance(o, services.DomainTaken)]
    assert len(created) == 1 and len(refused) == 1, outcomes
    assert refused[0].message == "race.example.com is already a site on this farm."
    assert Site.objects.filter(domain="race.example.com").count() == 1
    assert Operation.objects.count() == 1


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda a, b, c: f"{a}{b}{c}.example",
            st.from_regex(r"[a-zA-Z0-9]{0,8}", fullmatch=True),
            st.sampled_from([*list("'\"`$;&|<>(){}\\/\n\r\t *?!#%."), "..", "$(id)", "İ"]),
            st.from_regex(r"[a-zA-Z0-9]{0,8}", fullmatch=True),
        ),
    )
)
def test_hostile_input_is_refused_on_the_field_or_normalised_and_reaches_nothing(
    raw, operator, tenant, worker_node
):
    forbidden = mock.Mock(side_effect=AssertionError("reached an external system"))
    with (
        mock.patch("nodes.swarm.client", forbidden),
        mock.patch("nodes.mariadb.connect", forbidden),
        mock.patch("sites.files.ensure_site_files", forbidden),
        mock.patch("django_q.tasks.async_task"),
    ):
        response = post_site(client_for(operator), tenant, raw)
    if response.status_code == 302:
        site = Site.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-1]))
        assert re.fullmatch(DOMAIN_PATTERN, site.domain)
        Site.objects.filter(pk=site.pk).delete()
        Operation.objects.all().delete()
    else:
        assert response.status_code == 200
        assert response.context["form"].errors.get("domain"), (raw, response.context["form"].errors)
    forbidden.assert_not_called()


# --- Item 17: no tenant, no site -------------------------------------------------------


def post_new_site(client, domain, **fields):
    data = {"domain": domain, "image_choice": "php8.2", "cache_enabled": "on", **fields}
    return client.post(reverse("site_create"), data)


def test_item_17_on_a_fresh_farm_the_operator_creates_a_tenant_and_a_site_in_one_post(
    operator, worker_node
):
    assert not Tenant.objects.exists()
    client = client_for(operator)
    page = client.get(reverse("site_create"))
    assert page.status_code == 200
    assert "tenant" not in page.context["form"].fields, "no empty tenant list"
    assert 'data-testid="no-tenant-yet"' in page.content.decode()
    assert 'name="new_tenant_name"' in page.content.decode()

    response = post_new_site(client, "shop.localhost", new_tenant_name="Shop Co")
    site = Site.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("site_detail", args=[site.pk])
    tenant = Tenant.objects.get()
    assert (tenant.name, tenant.slug, site.tenant) == ("Shop Co", "shop-co", tenant)
    assert Operation.objects.get().tenant == tenant
    assert list(
        AuditEvent.objects.filter(tenant=tenant).order_by("id").values_list("action", flat=True)
    ) == ["tenant.create", "site.create"]


def test_item_17_with_no_tenant_and_no_name_the_error_says_what_to_do(operator, worker_node):
    response = post_new_site(client_for(operator), "shop.localhost", new_tenant_name="")
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors == {
        "new_tenant_name": [
            "Create a tenant first: type its name here (a customer, or your own team)."
        ]
    }
    assert "This field is required" not in response.content.decode()
    assert not Site.objects.exists()


def test_item_17_the_tenant_is_not_created_when_the_site_is_refused(operator):
    """No worker node is known, so the site is refused; the tenant goes with it."""
    response = post_new_site(client_for(operator), "shop.localhost", new_tenant_name="Shop Co")
    assert response.status_code == 200
    assert "No ready worker node is known" in str(response.context["form"].non_field_errors())
    assert not Tenant.objects.exists()
    assert not AuditEvent.objects.filter(action="tenant.create").exists()


def test_item_17_a_new_tenant_can_be_typed_beside_existing_ones(operator, tenant, worker_node):
    client = client_for(operator)
    form = client.get(reverse("site_create")).context["form"]
    assert form.fields["tenant"].required is False
    assert "a new tenant, named below" in str(form["tenant"])

    neither = post_new_site(client, "a.example.com", tenant="")
    assert neither.context["form"].errors["tenant"] == [
        "Choose a tenant, or type a new tenant's name below."
    ]
    both = post_site(client, tenant, "a.example.com", new_tenant_name="Initech")
    assert "clear this name" in both.context["form"].errors["new_tenant_name"][0]
    taken = post_new_site(client, "a.example.com", tenant="", new_tenant_name="ACME")
    assert taken.context["form"].errors["new_tenant_name"] == [
        "The tenant Acme already exists: choose it instead."
    ]
    no_letters = post_new_site(client, "a.example.com", tenant="", new_tenant_name="?!")
    assert "at least one letter or digit" in no_letters.context["form"].errors["new_tenant_name"][0]
    assert not Site.objects.exists() and Tenant.objects.count() == 1

    made = post_new_site(client, "a.example.com", tenant="", new_tenant_name="Initech")
    assert made.status_code == 302
    assert Site.objects.get().tenant.slug == "initech"


def test_item_17_the_tenant_page_links_new_site_with_its_tenant_chosen(operator, tenant):
    response = client_for(operator).get(reverse("site_create"), {"tenant": tenant.pk})
    assert response.context["form"]["tenant"].value() == str(tenant.pk)


def test_item_17_owners_never_create_tenants_and_one_without_a_tenant_is_told_why(
    owner, tenant, worker_node
):
    form = client_for(owner).get(reverse("site_create")).context["form"]
    assert "new_tenant_name" not in form.fields
    made = post_site(client_for(owner), tenant, "x.example.com", new_tenant_name="Mine")
    assert made.status_code == 302 and Tenant.objects.count() == 1

    nobody = User.objects.create_user("nobody@example.test")
    response = post_new_site(client_for(nobody), "y.example.com", tenant="")
    assert response.context["form"].errors["tenant"] == [
        "You own no tenant, so you cannot create a site: "
        "ask an operator to make you a tenant's owner."
    ]
