"""Issue 9, item 13: tenants do not see the farm's insides; they cannot make the panel run restic.

A failed operation of a tenant's site whose logs carry a host path, an
operator's e-mail address and the Docker Engine's own words: the operator's
pages show all of it, the tenant owner's pages none of it (farm.redaction).
Only an operator can have the panel read the repository again (the RPO ledger's
"Read the repository again", a POST); no page reads it.
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.conf import settings
from django.urls import reverse

from backups import restic
from farm.models import Operation, OperationStep
from sites.models import Site
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

DOCKER_ERROR = (
    "500 Server Error for http+docker://localhost/v1.41/services/create: Internal Server "
    'Error ("rpc error: code = Unknown desc = subnet sandbox join failed for 10.201.0.0/24")'
)


@pytest.fixture
def site(tenant) -> Site:
    return Site.objects.create(tenant=tenant, domain="shop.acme.test", status="failed")


@pytest.fixture
def failed_provision(site, operator, owner) -> tuple[Operation, dict[str, str]]:
    plugin = settings.FARM_SITES_ROOT / f"wp-{site.pk}" / "wp-content/mu-plugins/farm.php"
    secret = settings.FARM_SECRETS_DIR / "restic-password"
    operation = Operation.objects.create(
        kind="site.provision",
        target_type="site",
        target_id=str(site.pk),
        target_repr=site.domain,
        tenant=site.tenant,
        actor=operator,
        status="failed",
        error=f"Deploy the stack: Creating service wp-{site.pk}_nginx: {DOCKER_ERROR}",
    )
    OperationStep.objects.create(
        operation=operation,
        position=1,
        name="files",
        label="Create the site directory",
        status="succeeded",
        log=(
            f"09:00:01 wrote {plugin}\n"
            f"09:00:02 read the repository password from {secret}\n"
            "09:00:03 --- retry by ops@farm.test ---\n"
            f"09:00:04 --- retry by {owner.email} ---\n"
        ),
    )
    OperationStep.objects.create(
        operation=operation,
        position=2,
        name="swarm",
        label="Deploy the stack",
        status="failed",
        error=f"Creating service wp-{site.pk}_nginx: {DOCKER_ERROR}",
        log=f"09:00:05 Error: Creating service wp-{site.pk}_nginx: {DOCKER_ERROR}\n",
    )
    secrets = {
        "host path": str(settings.FARM_SITES_ROOT),
        "secrets dir": str(settings.FARM_SECRETS_DIR),
        "operator email": "ops@farm.test",
        "docker error": "http+docker://",
        "swarm words": "subnet sandbox join failed",
    }
    return operation, secrets


@pytest.mark.parametrize("page", ["operation_detail", "site_detail"])
def test_item_13_a_tenant_owners_page_hides_host_paths_operator_emails_and_docker_errors(
    page, failed_provision, site, operator, owner
):
    operation, secrets = failed_provision
    pk = operation.pk if page == "operation_detail" else site.pk
    url = reverse(page, args=[pk])

    operator_page = client_for(operator).get(url).content.decode()
    for what, text in secrets.items():
        assert text in operator_page, f"the operator sees the {what}"

    owner_page = client_for(owner).get(url).content.decode()
    for what, text in secrets.items():
        assert text not in owner_page, f"the tenant owner sees the {what}"

    from farm.redaction import AN_OPERATOR, ENGINE_ERROR

    assert ENGINE_ERROR in owner_page
    assert "[site files]/wp-content/mu-plugins/farm.php" in owner_page
    assert f"retry by {AN_OPERATOR}" in owner_page
    assert f"retry by {owner.email}" in owner_page, "their own address stays"


def test_item_13_redaction_keeps_what_is_not_the_farms_insides(owner, member, operator):
    from farm.redaction import redact_for

    text = "10:00:00 database wp_12 created\n10:00:01 started by member@acme.test\n"
    assert redact_for(owner, text) == text, "a fellow member's address is not hidden"
    assert redact_for(operator, DOCKER_ERROR) == DOCKER_ERROR
    assert redact_for(owner, f"see {settings.BASE_DIR}/manage.py") == "see [farm]"
    assert redact_for(owner, "") == ""


def test_item_13_redaction_looks_up_the_members_only_for_an_address_not_the_viewers(
    owner, member, operator, django_assert_num_queries
):
    from farm.redaction import AN_OPERATOR, person_for, redact_for

    with django_assert_num_queries(0):  # a page's logs rarely name anyone else
        assert redact_for(owner, "database created\n") == "database created\n"
        assert redact_for(owner, f"retry by {owner.email}") == f"retry by {owner.email}"
        assert person_for(owner, owner) == owner.email
        assert person_for(owner, operator) == AN_OPERATOR
    with django_assert_num_queries(1):  # once per viewer, however many texts
        assert redact_for(owner, f"retry by {operator.email}") == f"retry by {AN_OPERATOR}"
        assert redact_for(owner, f"by {member.email}") == f"by {member.email}"
        assert person_for(owner, member) == member.email


@pytest.fixture
def listing(monkeypatch, tenant):
    """restic's listing, counted; a watched site, so that a check reads it."""
    Site.objects.create(tenant=tenant, domain="watched.acme.test", status="active")
    snapshots = mock.Mock(return_value=[])
    monkeypatch.setattr(restic, "snapshots", snapshots)
    monkeypatch.setattr(restic, "repository_from_settings", mock.Mock())
    return snapshots


def test_item_13_only_an_operator_can_have_the_rpo_ledger_read_the_repository(
    listing, owner, operator
):
    response = client_for(owner).get(reverse("rpo_ledger"), {"refresh": "1"})
    assert response.status_code == 200
    assert reverse("rpo_check") not in response.content.decode(), "no button for it either"
    assert client_for(owner).post(reverse("rpo_check")).status_code == 403
    listing.assert_not_called()

    response = client_for(operator).get(reverse("rpo_ledger"), {"refresh": "1"})
    assert response.status_code == 200
    listing.assert_not_called()  # a page never waits on restic
    assert reverse("rpo_check") in response.content.decode()
    with mock.patch("sites.views.backups.async_task") as queued:
        assert client_for(operator).post(reverse("rpo_check")).status_code == 302
    listing.assert_not_called()  # nor does the button: the worker reads the repository
    queued.assert_called_once_with("sites.tasks.check_rpo", group="rpo")
