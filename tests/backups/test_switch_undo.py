"""Issue 9, item 4: rolling back a switch to the preview gives everything back.

``restore.switch`` says it is reversible; its first step gives the site's domain
(and its backup policy) to the preview. Rolling it back must give them back to
the original site, and only then deploy both stacks again so that the routes
follow the domains. The stacks are patched (no Swarm): the test records which
domains each site had when they were applied.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import BackupPolicy, Restore, RestoreScope, RestoreStatus, RestoreTarget
from farm.errors import FarmError
from farm.models import OperationStatus
from farm.operations import StepContext, get_kind, roll_back_operation, start_operation
from farm.runner import run_operation
from sites.models import Site, SiteStatus
from sites.steps import switch as switch_steps

pytestmark = pytest.mark.django_db

DOMAIN = "shop.acme.test"
PREVIEW = "restore-1-x.preview.test"


@pytest.fixture
def verified_beside(tenant) -> Restore:
    site = Site.objects.create(tenant=tenant, domain=DOMAIN, status=SiteStatus.ACTIVE)
    BackupPolicy.objects.create(site=site)
    preview = Site.objects.create(tenant=tenant, domain=PREVIEW, status=SiteStatus.ACTIVE)
    return Restore.objects.create(
        site=site,
        preview_site=preview,
        scope=RestoreScope.BOTH,
        target=RestoreTarget.BESIDE,
        point_in_time=timezone.now() - timedelta(hours=2),
        status=RestoreStatus.SUCCEEDED,
        verified=True,
    )


@pytest.fixture
def applied(monkeypatch) -> list[tuple[str, str]]:
    """(site's domain, preview's domain) each time both stacks were deployed."""
    calls: list[tuple[str, str]] = []

    def apply_both_stacks(restore: Restore, log) -> None:
        calls.append(domains(restore))

    monkeypatch.setattr(switch_steps, "apply_both_stacks", apply_both_stacks)
    monkeypatch.setattr(switch_steps, "wait_for_both", lambda restore, ctx: None)

    def verify_fails(self, ctx) -> None:
        raise FarmError(f"{DOMAIN} does not answer after the switch (HTTP 502).", retryable=True)

    monkeypatch.setattr(switch_steps.VerifySwitched, "run", verify_fails)
    return calls


def domains(restore: Restore) -> tuple[str, str]:
    """(the original site's domain, the preview's), as the database has them now."""
    preview = Site.objects.get(pk=restore.preview_site.pk if restore.preview_site else 0)
    return (Site.objects.get(pk=restore.site_id).domain, preview.domain)


def policy_site(restore: Restore) -> int:
    return BackupPolicy.objects.get().site_id


def test_item_4_rolling_back_a_failed_switch_gives_the_domain_and_policy_back(
    verified_beside, applied, owner
):
    restore = verified_beside
    switch = start_operation(
        "restore.switch",
        target_type="restore",
        target_id=restore.pk,
        tenant=restore.site.tenant,
        actor=owner,
        lock_name=f"site:{restore.site_id}",
    )
    assert run_operation(switch.pk) == "failed"
    assert domains(restore) == (PREVIEW, DOMAIN), "the preview has the site's domain"
    assert policy_site(restore) == restore.preview_site_id
    assert applied == [(PREVIEW, DOMAIN)]

    switch.refresh_from_db()
    assert get_kind("restore.switch").step("swap_domains").has_undo
    assert switch.can_roll_back()
    roll_back_operation(switch)
    assert run_operation(switch.pk) == "rolled_back"

    assert domains(restore) == (DOMAIN, PREVIEW)
    assert policy_site(restore) == restore.site_id
    # Both stacks were deployed again after the swap back, with the domains restored.
    assert applied[-1] == (DOMAIN, PREVIEW)
    restore.refresh_from_db()
    assert restore.status == RestoreStatus.SUCCEEDED and restore.can_switch()
    switch.refresh_from_db()
    assert switch.status == OperationStatus.ROLLED_BACK


def test_item_4_the_swap_undo_is_idempotent_and_a_noop_before_any_swap(
    verified_beside, applied, owner
):
    restore = verified_beside
    switch = start_operation(
        "restore.switch",
        target_type="restore",
        target_id=restore.pk,
        tenant=restore.site.tenant,
        lock_name=f"site:{restore.site_id}",
    )
    kind = get_kind("restore.switch")
    step_row = switch.steps.get(name="swap_domains")
    ctx = StepContext(switch, step_row, kind)
    swap = switch_steps.SwapDomains()

    swap.undo(ctx)  # never swapped: nothing changes, nothing is deployed
    assert domains(restore) == (DOMAIN, PREVIEW) and applied == []

    swap.run(ctx)
    assert domains(restore) == (PREVIEW, DOMAIN)
    swap.undo(ctx)
    swap.undo(ctx)
    assert domains(restore) == (DOMAIN, PREVIEW)
    assert policy_site(restore) == restore.site_id
    assert applied == [(DOMAIN, PREVIEW), (DOMAIN, PREVIEW)]
