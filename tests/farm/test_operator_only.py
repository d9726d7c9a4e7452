"""Issue 9, item 10: operator-only operations stay operator-only after they start.

A repair, a delete that purges files and backups, and the cluster's own work
are started by operators only; a tenant owner may not retry, roll back or
cancel them either (farm.services checks ``OperationKind.requires_operator``).
Nothing is run: the operations are put in the state each action needs.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from farm import services
from farm.models import Operation, OperationStatus
from farm.operations import start_operation
from sites.models import Site
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

ACTIONS = {
    "retry": (services.retry, "operation_retry", OperationStatus.FAILED),
    "roll_back": (services.roll_back, "operation_roll_back", OperationStatus.FAILED),
    "cancel": (services.cancel, "operation_cancel", OperationStatus.QUEUED),
}


@pytest.fixture
def site(tenant) -> Site:
    return Site.objects.create(tenant=tenant, domain="shop.acme.test", status="active")


def operation_of(case: str, site: Site, operator) -> Operation:
    kind, target_type, target_id, tenant, params = {
        "repair": ("site.repair", "site", site.pk, site.tenant, {}),
        "purge_delete": ("site.delete", "site", site.pk, site.tenant, {"purge": True}),
        "cluster_backup": ("backup.cluster", "cluster", "farm", None, {}),
        "restore_drill": ("restore.drill", "restore", "1", site.tenant, {}),
    }[case]
    return start_operation(
        kind,
        target_type=target_type,
        target_id=target_id,
        target_repr=site.domain,
        tenant=tenant,
        actor=operator,
        params=params,
    )


def in_state(operation: Operation, status: str) -> Operation:
    if status != OperationStatus.QUEUED:
        Operation.objects.filter(pk=operation.pk).update(status=status, lock_key=None)
    operation.refresh_from_db()
    return operation


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("case", ["repair", "purge_delete", "restore_drill"])
def test_item_10_a_tenant_owner_cannot_act_on_an_operator_only_operation(
    case, action, site, owner, operator
):
    service, url_name, status = ACTIONS[action]
    operation = in_state(operation_of(case, site, operator), status)

    with pytest.raises(PermissionDenied, match="Only operators"):
        service(operation=operation, actor=owner)
    response = client_for(owner).post(reverse(url_name, args=[operation.pk]))
    assert response.status_code == 403
    page = client_for(owner).get(reverse("operation_detail", args=[operation.pk]))
    body = page.content.decode()
    assert "Retry from failed step" not in body and ">Cancel</button>" not in body
    assert ">Roll back</button>" not in body
    assert "Only operators" in body, "the page says why there are no buttons"
    operation.refresh_from_db()
    assert operation.status == status, "a refused action changes nothing"


@pytest.mark.parametrize("action", list(ACTIONS))
def test_cluster_operations_stay_operator_only(action, site, owner, operator):
    """(Already so before item 10: a cluster operation has no tenant.)"""
    service, _, status = ACTIONS[action]
    operation = in_state(operation_of("cluster_backup", site, operator), status)
    with pytest.raises(PermissionDenied, match="Only operators"):
        service(operation=operation, actor=owner)


@pytest.mark.parametrize("case", ["repair", "purge_delete"])
def test_operators_still_act_on_operator_only_operations(case, site, operator):
    operation = in_state(operation_of(case, site, operator), OperationStatus.FAILED)
    services.retry(operation=operation, actor=operator)
    operation.refresh_from_db()
    assert operation.status == OperationStatus.QUEUED


def test_a_delete_that_keeps_files_and_backups_is_the_owners_to_retry(site, owner):
    operation = start_operation(
        "site.delete",
        target_type="site",
        target_id=site.pk,
        tenant=site.tenant,
        actor=owner,
        params={"purge": False},
    )
    operation = in_state(operation, OperationStatus.FAILED)
    services.retry(operation=operation, actor=owner)
    operation.refresh_from_db()
    assert operation.status == OperationStatus.QUEUED
