"""Issue 9, item 4: an old failed operation is never retried or rolled back over newer work.

An operation may be retried or rolled back only while it is the latest one on
what it locks (its ``lock_name``: a site's own operations and its restores all
lock ``site:<id>``). The scenario of the issue runs with the real site kinds,
their steps patched to record what they would do (no Swarm, no MariaDB).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from backups.models import Restore, RestoreScope, RestoreTarget
from farm.errors import FarmError, OperationStateError
from farm.models import Operation, OperationStatus
from farm.operations import retry_operation, roll_back_operation, start_operation
from farm.runner import run_operation
from sites import services as site_services
from sites.models import Site, SiteStatus
from sites.operations import PROVISION_STEPS
from tests.conftest import client_for
from tests.support.kinds import read_journal

pytestmark = pytest.mark.django_db


@pytest.fixture
def site_steps(monkeypatch, tmp_path) -> Path:
    """Every provision step records run/undo in a journal; "converge" fails while a flag exists."""
    journal = tmp_path / "journal"
    flag = tmp_path / "converge-fails"
    flag.touch()

    for step in PROVISION_STEPS:
        name = step.name

        def run(self, ctx, name=name) -> None:
            with journal.open("a") as fh:
                fh.write(f"run:{name}\n")
            if name == "converge" and flag.exists():
                raise FarmError("the tasks did not start", retryable=True)

        def undo(self, ctx, name=name) -> None:
            with journal.open("a") as fh:
                fh.write(f"undo:{name}\n")

        monkeypatch.setattr(type(step), "run", run)
        monkeypatch.setattr(type(step), "undo", undo)
    return flag


def provision(site: Site, actor) -> Operation:
    return start_operation(
        "site.provision",
        target_type="site",
        target_id=site.pk,
        target_repr=site.domain,
        tenant=site.tenant,
        actor=actor,
    )


def error_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


def test_item_4_roll_back_of_an_old_failed_provision_after_a_repair_destroys_nothing(
    site_steps, tenant, owner, operator, tmp_path
):
    site = Site.objects.create(tenant=tenant, domain="shop.acme.test", status="provisioning")
    failed = provision(site, owner)
    assert run_operation(failed.pk) == "failed"
    site.refresh_from_db()
    assert site.status == SiteStatus.FAILED

    # The operator repairs the site: the same steps, run again, and it is active.
    site_steps.unlink()
    repair = site_services.repair_site(site=site, actor=operator)
    assert run_operation(repair.pk) == "succeeded"
    site.refresh_from_db()
    assert site.status == SiteStatus.ACTIVE
    done_before = read_journal(tmp_path / "journal")

    # The tenant owner clicks "Roll back" on the old provision.
    failed.refresh_from_db()
    assert not failed.can_roll_back() and not failed.can_retry()
    owner_client = client_for(owner)
    page = owner_client.get(reverse("operation_detail", args=[failed.pk])).content.decode()
    assert ">Roll back</button>" not in page and "Retry from failed step" not in page
    assert f"site.repair #{repair.pk} was started" in page, "the page says why"

    for action in ("operation_roll_back", "operation_retry"):
        response = owner_client.post(reverse(action, args=[failed.pk]), follow=True)
        assert error_messages(response) == [failed.superseded_reason()]

    # Nothing ran: no stack removed, no directory deleted, no DROP DATABASE.
    assert run_operation(failed.pk) == "not claimed"
    assert read_journal(tmp_path / "journal") == done_before
    assert not [e for e in done_before if e.startswith("undo:")]
    failed.refresh_from_db()
    site.refresh_from_db()
    assert failed.status == OperationStatus.FAILED and failed.lock_key is None
    assert site.status == SiteStatus.ACTIVE, "the site is not marked deleted"


def test_the_latest_failed_operation_can_still_be_rolled_back(site_steps, tenant, owner):
    site = Site.objects.create(tenant=tenant, domain="shop.acme.test", status="provisioning")
    failed = provision(site, owner)
    run_operation(failed.pk)
    failed.refresh_from_db()
    assert failed.can_roll_back() and failed.can_retry()
    roll_back_operation(failed)
    assert run_operation(failed.pk) == "rolled_back"
    site.refresh_from_db()
    assert site.status == SiteStatus.DELETED


def test_item_4_the_check_is_repeated_inside_the_transaction(monkeypatch, tmp_path):
    """A later operation that appears after the first check still refuses the reopen."""
    flag = tmp_path / "fails"
    flag.touch()
    params = {"journal": str(tmp_path / "j"), "fail_while_exists": {"alpha": str(flag)}}
    failed = start_operation("test.recorded", target_type="test", target_id="x", params=params)
    run_operation(failed.pk)
    later = start_operation("test.recorded", target_type="test", target_id="x", params=params)
    flag.unlink()
    run_operation(later.pk)

    # As if the later one had been created just after the model's check passed.
    monkeypatch.setattr("farm.operations.transitions._refuse_if_superseded", lambda operation: None)
    for action in (retry_operation, roll_back_operation):
        with pytest.raises(OperationStateError, match=f"#{later.pk} was started"):
            action(failed)
        failed.refresh_from_db()
        assert failed.status == OperationStatus.FAILED and failed.lock_key is None


def test_item_4_an_old_failed_restore_is_stale_once_its_site_has_a_later_operation(
    tenant, owner, operator
):
    """A restore locks its site: a repair (or any later operation on the site) makes an
    old failed restore stale, so its undo cannot re-import an outdated safety backup."""
    site = Site.objects.create(tenant=tenant, domain="shop.acme.test", status="active")
    restore = Restore.objects.create(
        site=site,
        scope=RestoreScope.BOTH,
        target=RestoreTarget.IN_PLACE,
        point_in_time=site.created_at,
    )
    old = start_operation(
        "restore.site",
        target_type="restore",
        target_id=restore.pk,
        tenant=tenant,
        actor=owner,
        lock_name=f"site:{site.pk}",
    )
    Operation.objects.filter(pk=old.pk).update(status=OperationStatus.FAILED, lock_key=None)
    old.refresh_from_db()
    assert old.can_roll_back()

    later = site_services.repair_site(site=site, actor=operator)
    Operation.objects.filter(pk=later.pk).update(status=OperationStatus.SUCCEEDED, lock_key=None)
    old.refresh_from_db()
    assert not old.can_roll_back() and not old.can_retry()
    with pytest.raises(OperationStateError):
        roll_back_operation(old)
    old.refresh_from_db()
    assert old.status == OperationStatus.FAILED
