"""Issue 10, item 3: each rule of the panel is written once and every place that needs
it uses that one copy, so the pages and the services agree (no Swarm needed)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from backups.models import Restore, RestoreScope, RestoreStatus, RestoreTarget
from farm import services as operation_services
from farm import tenants
from farm.errors import FarmError
from farm.models import AuditEvent, Membership, Operation, OperationStatus, User
from farm.operations import start_operation
from farm.permissions import CHANGE_REFUSED
from sites import services
from sites.confirm import NOT_CONFIRMED, DomainNotConfirmed
from sites.forms import ConfirmDomainForm, SiteDeleteForm
from sites.models import Site, SiteStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

WRONG = ("", "nope", "other.acme.test", "shop.acme.test.evil")


@pytest.fixture
def site(tenant) -> Site:
    return Site.objects.create(tenant=tenant, domain="shop.acme.test", status=SiteStatus.ACTIVE)


# -- typing the domain to confirm ---------------------------------------------------------


def test_every_confirm_form_rejects_a_wrong_domain_with_the_same_words(site, owner):
    forms = [
        lambda data: ConfirmDomainForm(data, site=site),
        lambda data: SiteDeleteForm(data, site=site, user=owner),
    ]
    for make in forms:
        for typed in WRONG[1:]:
            form = make({"confirm_domain": typed})
            assert not form.is_valid()
            assert form.errors["confirm_domain"] == [NOT_CONFIRMED], typed
        for typed in ("shop.acme.test", " SHOP.acme.test "):
            assert make({"confirm_domain": typed}).is_valid(), typed


def test_every_confirm_page_shows_the_same_words_for_a_wrong_domain(site, owner):
    client = client_for(owner)
    point = (timezone.now() - timedelta(hours=1)).isoformat()
    pages = [
        (reverse("site_delete", args=[site.pk]), {}),
        (
            reverse("restore_wizard", args=[site.pk]),
            {"point": point, "scope": "db", "target": "beside"},
        ),
    ]
    for url, answers in pages:
        response = client.post(url, {**answers, "confirm_domain": "other.acme.test"})
        assert response.status_code == 200, url
        assert response.context["form"].errors["confirm_domain"] == [NOT_CONFIRMED], url
        body = response.content.decode()
        assert (
            'aria-invalid="true"' in body and "Type <code>shop.acme.test</code> to confirm" in body
        )
    assert not Operation.objects.exists() and not Restore.objects.exists()


def test_every_confirming_service_refuses_a_wrong_domain_with_the_same_words(site, owner):
    calls = [
        lambda typed: services.delete_site(
            site=site, actor=owner, confirm_domain=typed, purge=False
        ),
        lambda typed: services.start_restore(
            site=site,
            point_in_time=timezone.now(),
            scope="db",
            target="beside",
            actor=owner,
            confirm_domain=typed,
        ),
    ]
    for call in calls:
        for typed in WRONG:
            with pytest.raises(DomainNotConfirmed) as refused:
                call(typed)
            assert refused.value.message == NOT_CONFIRMED
    assert not Operation.objects.exists() and not Restore.objects.exists()


# -- may this person change this tenant's things ------------------------------------------


@pytest.fixture
def restore(site, tenant) -> Restore:
    preview = Site.objects.create(
        tenant=tenant, domain="restore-shop.acme.test", status=SiteStatus.ACTIVE
    )
    return Restore.objects.create(
        site=site,
        preview_site=preview,
        scope=RestoreScope.BOTH,
        target=RestoreTarget.BESIDE,
        status=RestoreStatus.SUCCEEDED,
        verified=True,
        point_in_time=timezone.now() - timedelta(hours=1),
    )


@pytest.fixture
def failed_operation(tenant, tmp_path) -> Operation:
    operation = start_operation(
        "test.recorded",
        target_type="test",
        target_id="acme",
        tenant=tenant,
        params={"journal": str(tmp_path / "journal")},
    )
    Operation.objects.filter(pk=operation.pk).update(status=OperationStatus.FAILED, lock_key=None)
    operation.refresh_from_db()
    return operation


def changing_services(
    site: Site, restore: Restore, operation: Operation, member: User
) -> dict[str, Callable[[User], object]]:
    """Every service that changes a tenant's things, called by ``actor``."""
    membership = Membership.objects.get(user=member)
    return {
        "create_site": lambda actor: services.create_site(
            tenant=site.tenant,
            domain="new.acme.test",
            image_choice="php8.2",
            cache_enabled=False,
            actor=actor,
        ),
        "decline_site_domain": lambda actor: services.decline_site_domain(site=site, actor=actor),
        "suspend_site": lambda actor: services.suspend_site(site=site, actor=actor),
        "resume_site": lambda actor: services.resume_site(site=site, actor=actor),
        "delete_site": lambda actor: services.delete_site(
            site=site, actor=actor, confirm_domain=site.domain, purge=False
        ),
        "back_up_now": lambda actor: services.back_up_now(site=site, actor=actor),
        "start_restore": lambda actor: services.start_restore(
            site=site,
            point_in_time=timezone.now(),
            scope="db",
            target="beside",
            actor=actor,
            confirm_domain=site.domain,
        ),
        "switch_to_preview": lambda actor: services.switch_to_preview(restore=restore, actor=actor),
        "add_member": lambda actor: tenants.add_member(
            tenant=site.tenant,
            email="new@acme.test",
            role="member",
            actor=actor,
            request=None,  # type: ignore[arg-type]
        ),
        "change_role": lambda actor: tenants.change_role(
            membership=membership, role="owner", actor=actor
        ),
        "remove_member": lambda actor: tenants.remove_member(membership=membership, actor=actor),
        "retry": lambda actor: operation_services.retry(operation=operation, actor=actor),
        "roll_back": lambda actor: operation_services.roll_back(operation=operation, actor=actor),
    }


def test_a_member_is_refused_by_every_changing_service_in_the_same_words(
    site, restore, failed_operation, member
):
    for name, call in changing_services(site, restore, failed_operation, member).items():
        with pytest.raises(PermissionDenied) as refused:
            call(member)
        assert str(refused.value) == CHANGE_REFUSED, name
    assert not AuditEvent.objects.exists()
    assert Operation.objects.count() == 1 and Restore.objects.count() == 1


def test_what_an_operation_page_says_to_a_member_is_the_same_refusal(failed_operation, member):
    actions = operation_services.actions_for(failed_operation, member)
    assert not actions.retry and actions.why_not == CHANGE_REFUSED


# Each action view and the service it calls; the view leaves the check to the service.
ACTION_VIEWS: list[tuple[str, str, Callable[[Any], tuple[object, ...]]]] = [
    ("site_suspend", "sites.services.suspend_site", lambda w: (w["site"].pk,)),
    ("site_resume", "sites.services.resume_site", lambda w: (w["site"].pk,)),
    ("site_repair", "sites.services.repair_site", lambda w: (w["site"].pk,)),
    ("site_approve", "sites.services.approve_site_domain", lambda w: (w["site"].pk,)),
    ("site_decline", "sites.services.decline_site_domain", lambda w: (w["site"].pk,)),
    ("back_up_now", "sites.services.back_up_now", lambda w: (w["site"].pk,)),
    ("restore_switch", "sites.services.switch_to_preview", lambda w: (w["restore"].pk,)),
    ("operation_retry", "farm.services.retry", lambda w: (w["operation"].pk,)),
    ("operation_roll_back", "farm.services.roll_back", lambda w: (w["operation"].pk,)),
    ("operation_cancel", "farm.services.cancel", lambda w: (w["operation"].pk,)),
    (
        "tenant_member_role",
        "farm.tenants.change_role",
        lambda w: (w["tenant"].pk, w["membership"].pk),
    ),
    (
        "tenant_member_remove",
        "farm.tenants.remove_member",
        lambda w: (w["tenant"].pk, w["membership"].pk),
    ),
    (
        "tenant_member_invite",
        "farm.tenants.resend_invitation",
        lambda w: (w["tenant"].pk, w["membership"].pk),
    ),
    ("tenant_member_add", "farm.tenants.add_member", lambda w: (w["tenant"].pk,)),
]


@pytest.mark.parametrize(
    ("name", "service", "args"), ACTION_VIEWS, ids=[v[0] for v in ACTION_VIEWS]
)
def test_an_action_view_leaves_the_permission_check_to_its_service(
    name, service, args, site, restore, failed_operation, tenant, member
):
    world = {
        "site": site,
        "restore": restore,
        "operation": failed_operation,
        "tenant": tenant,
        "membership": Membership.objects.get(user=member),
    }
    data = {"role": "owner", "email": "new@acme.test"}
    refusing = mock.Mock(side_effect=PermissionDenied(CHANGE_REFUSED))
    with mock.patch(service, refusing):
        response = client_for(member).post(reverse(name, args=args(world)), data)
    assert response.status_code == 403
    refusing.assert_called_once()
    assert refusing.call_args.kwargs["actor"] == member


# -- a live region's partial, and 286 once the work is done -------------------------------


def live_pages(site: Site, restore: Restore, operation: Operation) -> list[tuple[str, str]]:
    """(URL, id of the live region) of every page with a live region."""
    return [
        (reverse("operation_detail", args=[operation.pk]), f"operation-{operation.pk}"),
        (reverse("site_detail", args=[site.pk]), f"site-{site.pk}-live"),
        (reverse("restore_detail", args=[restore.pk]), f"restore-{restore.pk}"),
    ]


def test_every_live_page_answers_its_regions_poll_the_same_way(
    site, restore, failed_operation, owner
):
    client = client_for(owner)
    for url, region in live_pages(site, restore, failed_operation):
        page = client.get(url)
        assert page.status_code == 200 and "<html" in page.content.decode(), url
        assert f'id="{region}"' in page.content.decode(), url
        # nothing runs on any of them: the region's last state, and polling stops
        poll = client.get(url, headers={"HX-Request": "true", "HX-Target": region})
        assert poll.status_code == 286, url
        assert "<html" not in poll.content.decode() and f'id="{region}"' in poll.content.decode()
        # an htmx request for something else on the page is not the region's poll
        other = client.get(url, headers={"HX-Request": "true", "HX-Target": "main"})
        assert other.status_code == 200 and "<html" in other.content.decode(), url


def test_a_live_region_keeps_polling_while_its_work_runs(site, owner, tmp_path):
    operation = services.suspend_site(site=site, actor=owner)
    client = client_for(owner)
    for url, region in [
        (reverse("operation_detail", args=[operation.pk]), f"operation-{operation.pk}"),
        (reverse("site_detail", args=[site.pk]), f"site-{site.pk}-live"),
    ]:
        poll = client.get(url, headers={"HX-Request": "true", "HX-Target": region})
        assert poll.status_code == 200 and 'hx-trigger="every 1s"' in poll.content.decode(), url


# -- which sites can be repaired ------------------------------------------------------------


def test_the_site_page_shows_repair_exactly_when_the_site_can_be_repaired(site, operator):
    client = client_for(operator)
    for status in SiteStatus.values:
        Site.objects.filter(pk=site.pk).update(status=status)
        site.refresh_from_db()
        body = client.get(reverse("site_detail", args=[site.pk])).content.decode()
        shown = reverse("site_repair", args=[site.pk]) in body
        assert shown == site.can_repair(), status


def test_the_repair_service_refuses_exactly_the_sites_that_cannot_be_repaired(site, operator):
    for status in SiteStatus.values:
        Operation.objects.all().delete()
        Site.objects.filter(pk=site.pk).update(status=status)
        site.refresh_from_db()
        if site.can_repair():
            assert services.repair_site(site=site, actor=operator).kind == "site.repair"
        else:
            with pytest.raises(FarmError, match="cannot be repaired"):
                services.repair_site(site=site, actor=operator)
    assert {s for s in SiteStatus.values if Site(status=s).can_repair()} == {
        "active",
        "failed",
        "suspended",
    }


def test_repair_is_not_shown_to_tenants(site, owner):
    body = client_for(owner).get(reverse("site_detail", args=[site.pk])).content.decode()
    assert site.can_repair() and reverse("site_repair", args=[site.pk]) not in body
