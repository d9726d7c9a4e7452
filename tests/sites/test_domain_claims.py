"""Issue 9, item 2: who may claim which domain, and the farm never takes over DNS it
did not create. The rules live in sites/claims.py; the New site form (field errors)
and services.create_site (DomainTaken) both use them; the provision DNS step checks
Cloudflare again. Cloudflare is the local fake, driven by the real SDK."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.urls import reverse

from farm.errors import FarmError, QuotaExceeded
from farm.models import AuditEvent, Operation
from farm.operations import StepContext, get_kind
from farm.runner import run_operation
from sites import services, steps
from sites.claims import ClaimOutcome, check_domain_claim
from sites.dns import farm_mark
from sites.dns_errors import DnsNameTaken
from sites.models import Site, SiteStatus
from tests.conftest import client_for
from tests.fakes.cloudflare_api import FakeCloudflareApi, running_fake_cloudflare

pytestmark = pytest.mark.django_db

ZONE = "farm.example"
EDGE_IP = "203.0.113.10"
PROVISION_STEPS_BEFORE_DNS = ("allocate", "database", "files", "swarm", "converge")


@pytest.fixture(autouse=True)
def managed_zone(settings) -> None:
    """The farm manages one zone; Cloudflare itself is not configured unless asked."""
    settings.CLOUDFLARE_API_TOKEN = ""
    settings.CLOUDFLARE_ZONES = [ZONE]
    settings.SITE_URL = "https://panel.farm.example"
    settings.ALLOWED_HOSTS = ["panel.farm.example", "ops.example.org", "localhost", "testserver"]
    settings.FARM_PREVIEW_DOMAIN = "localhost"


@pytest.fixture
def cloudflare(settings) -> Iterator[FakeCloudflareApi]:
    with running_fake_cloudflare(token="cf-token", zones=[ZONE]) as api:
        settings.CLOUDFLARE_API_TOKEN = "cf-token"
        settings.CLOUDFLARE_RECORD_TARGET = EDGE_IP
        settings.CLOUDFLARE_PROXIED = True
        settings.CLOUDFLARE_RECORD_TTL = 1
        settings.CLOUDFLARE_BASE_URL = api.base_url
        yield api


def post_site(client, tenant, domain):
    data = {"domain": domain, "tenant": tenant.pk, "image_choice": "php8.2", "cache_enabled": "on"}
    return client.post(reverse("site_create"), data)


def domain_error(response) -> str:
    assert response.status_code == 200, "the form is shown again"
    return " ".join(response.context["form"].errors.get("domain", []))


def create(tenant, actor, domain) -> services.Created:
    return services.create_site(
        tenant=tenant, domain=domain, image_choice="php8.2", cache_enabled=True, actor=actor
    )


def writes(api: FakeCloudflareApi) -> list[str]:
    return [f"{r.method} {r.path}" for r in api.requests if r.method != "GET"]


# ---- reserved names --------------------------------------------------------------


def test_item_2_a_tenant_cannot_take_the_zone_apex_an_operator_can(
    owner, operator, tenant, worker_node
):
    response = post_site(client_for(owner), tenant, "Farm.Example")
    assert "apex of the farm's zone farm.example" in domain_error(response)
    with pytest.raises(services.DomainTaken) as caught:
        create(tenant, owner, "farm.example")
    assert caught.value.code == "apex"
    assert not Site.objects.exists()

    assert post_site(client_for(operator), tenant, "farm.example").status_code == 302
    assert Site.objects.get().status == SiteStatus.PROVISIONING


@pytest.mark.parametrize(
    "name", ["www", "mail", "mx", "smtp", "imap", "pop", "ftp", "ns1", "ns2", "autodiscover",
             "autoconfig", "cpanel", "webmail"]
)  # fmt: skip
def test_item_2_reserved_first_labels_in_a_managed_zone_are_refused_for_tenants(
    owner, tenant, worker_node, name
):
    response = post_site(client_for(owner), tenant, f"{name}.farm.example")

    assert f"“{name}” names are reserved in farm.example" in domain_error(response)
    assert not Site.objects.exists()


def test_item_2_reserved_labels_are_a_setting_and_operators_may_use_them(
    owner, operator, tenant, worker_node, settings
):
    settings.FARM_RESERVED_LABELS = ["shop"]

    assert "reserved" in domain_error(post_site(client_for(owner), tenant, "shop.farm.example"))
    assert post_site(client_for(owner), tenant, "www.farm.example").status_code == 302
    assert post_site(client_for(operator), tenant, "shop.farm.example").status_code == 302
    assert sorted(Site.objects.values_list("domain", flat=True)) == [
        "shop.farm.example",
        "www.farm.example",
    ]


def test_item_2_reserved_labels_count_only_as_the_first_label_of_a_managed_name(owner, tenant):
    assert check_domain_claim("www.shop.farm.example", actor=owner).code == "reserved"
    assert not check_domain_claim("shop.www-farm.farm.example", actor=owner).refused
    assert not check_domain_claim("webmailer.farm.example", actor=owner).refused
    assert check_domain_claim("mail.example.org", actor=owner).needs_approval  # not a zone


@pytest.mark.parametrize("host", ["panel.farm.example", "PANEL.farm.example.", "ops.example.org"])
def test_item_2_the_panels_own_host_is_refused_for_everyone(
    owner, operator, tenant, worker_node, host
):
    for person in (owner, operator):
        response = post_site(client_for(person), tenant, host)
        assert "the panel's own address" in domain_error(response)
    with pytest.raises(services.DomainTaken) as caught:
        create(tenant, operator, host)
    assert caught.value.code == "panel_host"
    assert not Site.objects.exists()


@pytest.mark.parametrize(
    ("preview_domain", "domain"),
    [
        ("localhost", "restore-12-202601011200.localhost"),
        ("localhost", "restore-anything.localhost"),
        ("previews.farm.example", "restore-3-202601011200.previews.farm.example"),
    ],
)
def test_item_2_restore_preview_names_are_refused_for_everyone(
    owner, operator, tenant, worker_node, settings, preview_domain, domain
):
    settings.FARM_PREVIEW_DOMAIN = preview_domain

    for person in (owner, operator):
        response = post_site(client_for(person), tenant, domain)
        assert "looks like a restore preview" in domain_error(response)
    assert not Site.objects.exists()


def test_item_2_a_name_inside_another_tenants_site_is_refused_for_tenants(
    owner, operator, tenant, other_tenant, worker_node
):
    Site.objects.create(tenant=other_tenant, domain="shop.farm.example", status="active")
    Site.objects.create(tenant=tenant, domain="blog.farm.example", status="active")

    under = post_site(client_for(owner), tenant, "login.shop.farm.example")
    assert "under shop.farm.example, a site of another tenant" in domain_error(under)
    assert not check_domain_claim("cdn.blog.farm.example", actor=owner).refused  # its own
    assert not check_domain_claim("login.shop.farm.example", actor=operator).refused


# ---- outside the managed zones: an operator approves first ---------------------------


def test_item_2_a_tenants_domain_outside_the_zones_waits_for_an_operator(
    owner, tenant, worker_node
):
    response = post_site(client_for(owner), tenant, "shop.example.org")

    site = Site.objects.get()
    assert response.status_code == 302
    assert site.status == SiteStatus.AWAITING_APPROVAL
    assert not Operation.objects.exists(), "nothing is provisioned before approval"
    page = client_for(owner).get(reverse("site_detail", args=[site.pk]))
    text = page.content.decode()
    assert "Waiting for an operator's approval" in text
    assert "not in a zone the farm manages" in text
    assert reverse("site_approve", args=[site.pk]) not in text, "owners cannot approve"
    event = AuditEvent.objects.get(action="site.create")
    assert event.data["awaiting_approval"] is True


def test_item_2_a_site_awaiting_approval_counts_against_the_quota(owner, tenant, worker_node):
    tenant.site_quota = 1
    tenant.save()
    assert create(tenant, owner, "one.example.org").awaiting_approval

    with pytest.raises(QuotaExceeded):
        create(tenant, owner, "two.example.org")


def test_item_2_local_and_managed_zone_names_need_no_approval(owner, tenant, worker_node):
    assert create(tenant, owner, "shop.localhost").operation.kind == "site.provision"
    assert create(tenant, owner, "shop.farm.example").operation.kind == "site.provision"
    assert set(Site.objects.values_list("status", flat=True)) == {SiteStatus.PROVISIONING}


def test_item_2_an_operators_own_site_outside_the_zones_is_approved_at_once(
    operator, tenant, worker_node
):
    created = create(tenant, operator, "shop.example.org")

    assert not created.awaiting_approval
    assert created.site.status == SiteStatus.PROVISIONING
    assert check_domain_claim("other.example.org", actor=operator).outcome == ClaimOutcome.ALLOWED


def test_item_2_an_operator_approves_the_domain_and_provisioning_starts(
    owner, operator, outsider, tenant, worker_node
):
    site = create(tenant, owner, "shop.example.org").site
    url = reverse("site_approve", args=[site.pk])

    assert client_for(owner).post(url).status_code == 403
    assert client_for(outsider).post(url).status_code == 404
    assert client_for(operator).get(url).status_code == 405
    site.refresh_from_db()
    assert site.status == SiteStatus.AWAITING_APPROVAL
    page = client_for(operator).get(reverse("site_detail", args=[site.pk])).content.decode()
    assert url in page

    response = client_for(operator).post(url)

    assert response.status_code == 302
    site.refresh_from_db()
    assert site.status == SiteStatus.PROVISIONING
    operation = Operation.objects.get()
    assert (operation.kind, operation.target_id) == ("site.provision", str(site.pk))
    event = AuditEvent.objects.get(action="site.approve_domain")
    assert (event.actor, event.target_id) == (operator, str(site.pk))
    with pytest.raises(FarmError, match="not waiting for approval"):
        services.approve_site_domain(site=site, actor=operator)


def test_item_2_only_operators_approve_domains(owner, tenant, worker_node):
    site = create(tenant, owner, "shop.example.org").site

    with pytest.raises(PermissionDenied):
        services.approve_site_domain(site=site, actor=owner)


def test_item_2_the_owner_withdraws_a_waiting_site_and_the_name_is_free(
    owner, member, tenant, worker_node
):
    site = create(tenant, owner, "shop.example.org").site
    url = reverse("site_decline", args=[site.pk])

    assert client_for(member).post(url).status_code == 403
    assert client_for(owner).post(url).status_code == 302

    site.refresh_from_db()
    assert (site.status, site.domain_claim) == (SiteStatus.DELETED, None)
    assert AuditEvent.objects.filter(action="site.withdraw", target_id=str(site.pk)).exists()
    assert create(tenant, owner, "shop.example.org").awaiting_approval


# ---- records the farm did not create ------------------------------------------------


def test_item_2_creation_is_refused_when_the_name_has_a_foreign_record(
    cloudflare, owner, operator, tenant, worker_node
):
    cloudflare.add_record(ZONE, name="shop.farm.example", type="A", content="198.51.100.7")

    for person in (owner, operator):
        response = post_site(client_for(person), tenant, "shop.farm.example")
        error = domain_error(response)
        assert "already has DNS records the farm did not create" in error
        assert "A record not created by the farm" in error
    with pytest.raises(services.DomainTaken) as caught:
        create(tenant, operator, "shop.farm.example")

    assert caught.value.code == "dns_taken"
    assert not Site.objects.exists()
    assert writes(cloudflare) == []


def test_item_2_a_record_marked_for_a_site_this_panel_does_not_know_blocks_the_name(
    cloudflare, operator, tenant, worker_node
):
    # Another farm sharing the zone, or a site row removed by hand: never a leftover.
    cloudflare.add_record(
        ZONE, name="blog.farm.example", type="A", content=EDGE_IP, comment=farm_mark(999)
    )

    decision = check_domain_claim("blog.farm.example", actor=operator)

    assert decision.code == "dns_taken"
    assert "A record the farm made for site 999" in decision.reason


def test_item_2_a_deleted_sites_leftover_record_does_not_block_the_name(
    cloudflare, operator, tenant, worker_node
):
    gone = Site.objects.create(tenant=tenant, domain="shop.farm.example", status="deleted")
    cloudflare.add_record(
        ZONE, name="shop.farm.example", type="A", content=EDGE_IP, comment=farm_mark(gone.pk)
    )

    assert check_domain_claim("shop.farm.example", actor=operator).outcome == ClaimOutcome.ALLOWED


def test_item_2_cloudflare_unreachable_at_creation_leaves_the_check_to_the_dns_step(
    cloudflare, operator, tenant, worker_node
):
    cloudflare.fail_next(10, status=503)

    assert check_domain_claim("shop.farm.example", actor=operator).outcome == ClaimOutcome.ALLOWED


def _provision_up_to_dns(tenant, actor, domain) -> tuple[Site, Operation]:
    """A provision whose steps before DNS are done (they need the Swarm, not DNS)."""
    created = create(tenant, actor, domain)
    created.operation.steps.filter(name__in=PROVISION_STEPS_BEFORE_DNS).update(status="succeeded")
    return created.site, created.operation


def _context(operation: Operation, step_name: str) -> StepContext:
    return StepContext(operation, operation.steps.get(name=step_name), get_kind(operation.kind))


def test_item_2_the_provision_dns_step_refuses_a_foreign_record_and_says_retrying_wont_help(
    cloudflare, operator, tenant, worker_node
):
    site, operation = _provision_up_to_dns(tenant, operator, "shop.farm.example")
    # Someone adds a record between the New site form and the DNS step.
    foreign = cloudflare.add_record(
        ZONE, name="shop.farm.example", type="CNAME", content="elsewhere.example.net"
    )

    assert run_operation(operation.pk) == "failed"

    operation.refresh_from_db()
    dns_step = operation.steps.get(name="dns")
    assert dns_step.status == "failed"
    assert "already has DNS records the farm did not create" in dns_step.error
    assert operation.retryable is False
    assert operation.steps.get(name="reachable").status == "pending"
    site.refresh_from_db()
    assert site.status == SiteStatus.FAILED
    assert cloudflare.records_named("shop.farm.example") == [foreign]
    assert writes(cloudflare) == []


def test_item_2_the_dns_step_creates_and_updates_the_sites_own_marked_record(
    cloudflare, operator, tenant, worker_node
):
    site, operation = _provision_up_to_dns(tenant, operator, "shop.farm.example")
    dns_step = steps.Dns()

    dns_step.run(_context(operation, "dns"))
    [created] = cloudflare.records_named("shop.farm.example")
    assert (created["content"], created["comment"]) == (EDGE_IP, farm_mark(site.pk))

    cloudflare.records[cloudflare.zone_id_of(ZONE)][created["id"]]["content"] = "192.0.2.1"
    dns_step.run(_context(operation, "dns"))
    [updated] = cloudflare.records_named("shop.farm.example")
    assert (updated["id"], updated["content"]) == (created["id"], EDGE_IP)


def test_item_2_the_dns_step_does_not_touch_a_record_marked_for_another_site(
    cloudflare, operator, tenant, worker_node
):
    _site, operation = _provision_up_to_dns(tenant, operator, "shop.farm.example")
    theirs = cloudflare.add_record(
        ZONE, name="shop.farm.example", type="A", content=EDGE_IP, comment=farm_mark(999)
    )

    with pytest.raises(DnsNameTaken) as caught:
        steps.Dns().run(_context(operation, "dns"))
    steps.RemoveDns().run(_context(operation, "dns"))  # the undo: deletes nothing

    assert caught.value.retryable is False
    assert "A record the farm made for site 999" in caught.value.message
    assert cloudflare.records_named("shop.farm.example") == [theirs]
    assert writes(cloudflare) == []


def test_item_2_the_dns_step_takes_over_the_leftover_of_a_site_that_gave_up_the_name(
    cloudflare, operator, tenant, worker_node
):
    # A restore switched the name to a preview: the old site now has the preview's name.
    old = Site.objects.create(tenant=tenant, domain="restore-1-x.localhost", status="active")
    leftover = cloudflare.add_record(
        ZONE, name="shop.farm.example", type="A", content=EDGE_IP, comment=farm_mark(old.pk)
    )
    site, operation = _provision_up_to_dns(tenant, operator, "shop.farm.example")

    steps.Dns().run(_context(operation, "dns"))

    [record] = cloudflare.records_named("shop.farm.example")
    assert (record["id"], record["comment"]) == (leftover["id"], farm_mark(site.pk))


def test_item_2_delete_removes_the_sites_own_record_and_leaves_foreign_ones(
    cloudflare, operator, tenant, worker_node
):
    site = Site.objects.create(tenant=tenant, domain="shop.farm.example", status="active")
    cloudflare.add_record(
        ZONE, name="shop.farm.example", type="A", content=EDGE_IP, comment=farm_mark(site.pk)
    )
    foreign = cloudflare.add_record(
        ZONE, name="shop.farm.example", type="A", content="198.51.100.7"
    )
    other_sites = cloudflare.add_record(
        ZONE, name="shop.farm.example", type="A", content="192.0.2.9", comment=farm_mark(999)
    )
    operation = services.delete_site(
        site=site, actor=operator, confirm_domain="shop.farm.example", purge=False
    )

    steps.RemoveDns().run(_context(operation, "remove_dns"))

    assert cloudflare.records_named("shop.farm.example") == [foreign, other_sites]
    assert "removed 1 DNS record(s)" in operation.steps.get(name="remove_dns").log


def test_item_2_records_made_before_the_marks_are_adopted_only_on_an_operators_command(
    cloudflare, tenant, worker_node
):
    site = Site.objects.create(tenant=tenant, domain="shop.farm.example", status="active")
    Site.objects.create(tenant=tenant, domain="blog.farm.example", status="active")
    old = cloudflare.add_record(
        ZONE, name="shop.farm.example", type="A", content=EDGE_IP, proxied=True
    )
    elsewhere = cloudflare.add_record(
        ZONE, name="blog.farm.example", type="A", content="198.51.100.7", proxied=True
    )

    listed = io.StringIO()
    call_command("adopt_dns_records", stdout=listed)
    assert "would mark A shop.farm.example" in listed.getvalue()
    assert writes(cloudflare) == []

    call_command("adopt_dns_records", "--apply", stdout=io.StringIO())

    [adopted] = cloudflare.records_named("shop.farm.example")
    assert (adopted["id"], adopted["comment"]) == (old["id"], farm_mark(site.pk))
    assert cloudflare.records_named("blog.farm.example") == [elsewhere], "never adopted"
