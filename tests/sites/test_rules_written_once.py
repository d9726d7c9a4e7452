"""Issue 10, item 3: each rule of the panel is written once and every place that needs
it uses that one copy, so the pages and the services agree (no Swarm needed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.models import Restore
from farm.models import Operation
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
