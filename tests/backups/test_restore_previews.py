"""Item 7 of issue 9: a restore beside is a new live site, and is treated as one.

Its preview counts against the tenant's quota and needs room on a worker, both
checked when the restore starts (the wizard says why it is refused); its name,
``restore-<site>-<16 random hex>.<FARM_PREVIEW_DOMAIN>``, never collides and
cannot be guessed; and a restore beside (or drill) that fails removes its
preview, or at least leaves it failed, which the panel can delete.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from backups import restic
from backups.models import Restore, RestoreScope, RestoreStatus, RestoreTarget
from farm.errors import FarmError, QuotaExceeded
from farm.models import Operation, OperationStatus
from farm.operations import StepContext, cancel_operation, get_kind
from farm.runner import run_operation
from nodes.capacity import CapacityError, site_reservation
from nodes.models import Node
from sites import files
from sites import services as site_services
from sites.models import Site, SiteStatus
from sites.services import restores
from sites.steps import PreviewSite
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PREVIEW_DOMAIN = "preview.farm.test"


@pytest.fixture(autouse=True)
def _farm(settings, tmp_path: Path, monkeypatch) -> None:
    settings.FARM_PREVIEW_DOMAIN = PREVIEW_DOMAIN
    settings.FARM_SITES_ROOT = tmp_path / "sites"
    settings.FARM_SITE_DB_HOST = "db.farm.test:3306"

    def snapshot_for(site: Site, kind: str, at: datetime) -> restic.Snapshot:
        ident = ("d" if kind == "db" else "f") * 64
        return restic.Snapshot(ident, ident[:8], at, {"site": str(site.pk)}, ["/x"], "farm")

    monkeypatch.setattr(restores, "_snapshot_for", snapshot_for)


@pytest.fixture
def site(tenant) -> Site:
    return Site.objects.create(tenant=tenant, domain="shop.acme.test", status=SiteStatus.ACTIVE)


def start_beside(site: Site, actor: Any, *, drill: bool = False) -> Restore:
    return site_services.start_restore(
        site=site,
        point_in_time=timezone.now(),
        scope=RestoreScope.BOTH,
        target=RestoreTarget.BESIDE,
        actor=actor,
        confirm_domain=site.domain,
        drill=drill,
    )


def finish(restore: Restore) -> None:
    """The restore's operation is over (its lock released), as a worker leaves it."""
    assert restore.operation is not None
    Operation.objects.filter(pk=restore.operation.pk).update(
        status=OperationStatus.SUCCEEDED, lock_key=None
    )


def run_preview_step(restore: Restore) -> Site:
    assert restore.operation is not None
    operation = Operation.objects.get(pk=restore.operation.pk)
    ctx = StepContext(operation, operation.steps.get(name="preview_site"), get_kind(operation.kind))
    PreviewSite().run(ctx)
    restore.refresh_from_db()
    assert restore.preview_site is not None
    return restore.preview_site


# -- quota and capacity -----------------------------------------------------------------


def test_item_7_a_restore_beside_counts_its_preview_against_the_quota(
    owner, tenant, site, worker_node
):
    tenant.site_quota = 1
    tenant.save()

    with pytest.raises(QuotaExceeded, match="needs one more for its preview"):
        start_beside(site, owner)
    assert not Restore.objects.exists() and not Operation.objects.exists()
    assert Site.objects.count() == 1


def test_item_7_the_wizard_says_why_a_restore_beside_is_refused(owner, tenant, site, worker_node):
    tenant.site_quota = 1
    tenant.save()
    response = client_for(owner).post(
        reverse("restore_wizard", args=[site.pk]),
        {
            "point": timezone.now().isoformat(),
            "scope": "both",
            "target": "beside",
            "confirm_domain": site.domain,
        },
    )
    assert response.status_code == 200 and response.context["step"] == "confirm"
    assert "a restore beside needs one more for its preview" in response.content.decode()
    assert not Restore.objects.exists()


def test_item_7_a_restore_in_place_needs_no_room_for_a_preview(owner, tenant, site):
    tenant.site_quota = 1
    tenant.save()
    restore = site_services.start_restore(
        site=site,
        point_in_time=timezone.now(),
        scope=RestoreScope.BOTH,
        target=RestoreTarget.IN_PLACE,
        actor=owner,
        confirm_domain=site.domain,
    )
    assert restore.preview_site is None


def test_item_7_a_preview_counts_as_a_live_site_from_the_moment_the_restore_starts(
    owner, tenant, site, worker_node
):
    tenant.site_quota = 2
    tenant.save()
    restore = start_beside(site, owner)

    assert restore.preview_site is not None
    assert restore.preview_site.status == SiteStatus.RESTORING
    with pytest.raises(QuotaExceeded):
        site_services.create_site(
            tenant=tenant,
            domain="second.acme.test",
            image_choice="php8.2",
            cache_enabled=True,
            actor=owner,
        )
    finish(restore)
    with pytest.raises(QuotaExceeded):
        start_beside(site, owner)


def test_item_7_a_restore_beside_needs_room_on_a_worker_for_its_preview(owner, site):
    # Room for the site itself, not for a preview beside it.
    one_site_mb = site_reservation(cache_enabled=site.cache_enabled).memory_mb
    Node.objects.create(
        swarm_id="small-1",
        hostname="small-1",
        role="worker",
        status="ready",
        availability="active",
        memory_bytes=int(one_site_mb * 1.5) * 1024**2,
        cpus=2,
        farm_roles=["worker"],
    )

    with pytest.raises(CapacityError, match="No worker has room"):
        start_beside(site, owner)
    assert not Restore.objects.exists()


def test_item_7_a_drill_is_not_refused_by_the_quota_but_by_capacity(tenant, site, worker_node):
    tenant.site_quota = 1
    tenant.save()
    drill = start_beside(site, None, drill=True)
    assert drill.preview_site is not None

    finish(drill)
    Node.objects.all().delete()
    with pytest.raises(CapacityError):
        start_beside(site, None, drill=True)


# -- names ----------------------------------------------------------------------------------

NAME = re.compile(rf"^restore-(\d+)-([0-9a-f]{{16}})\.{re.escape(PREVIEW_DOMAIN)}$")


def test_item_7_two_previews_of_a_site_in_the_same_minute_get_different_names(
    owner, site, worker_node
):
    first = start_beside(site, owner)
    finish(first)
    second = start_beside(site, owner)
    same_minute = timezone.now().replace(second=0, microsecond=0)
    Restore.objects.filter(pk__in=[first.pk, second.pk]).update(started_at=same_minute)

    previews = [run_preview_step(first), run_preview_step(second)]

    assert previews[0].domain != previews[1].domain
    assert all(p.status == SiteStatus.RESTORING for p in previews)


def test_item_7_preview_names_are_unguessable_and_under_the_preview_domain(
    owner, site, worker_node
):
    restore = start_beside(site, owner)
    preview = run_preview_step(restore)

    match = NAME.match(preview.domain)
    assert match, preview.domain
    assert match.group(1) == str(site.pk)
    assert timezone.localtime(restore.started_at).strftime("%Y%m%d") not in match.group(2)


def test_item_7_a_preview_name_already_taken_is_never_shared(
    owner, tenant, site, worker_node, monkeypatch
):
    tokens = iter(["0" * 16, "1" * 16])
    monkeypatch.setattr("sites.steps.preview.secrets.token_hex", lambda n: next(tokens))
    squatted = Site.objects.create(
        tenant=tenant,
        domain=f"restore-{site.pk}-{'0' * 16}.{PREVIEW_DOMAIN}",
        status=SiteStatus.ACTIVE,
    )

    restore = start_beside(site, owner)

    assert restore.preview_site is not None and restore.preview_site != squatted
    assert restore.preview_site.domain == f"restore-{site.pk}-{'1' * 16}.{PREVIEW_DOMAIN}"


# -- clean-up on failure --------------------------------------------------------------------


@pytest.fixture
def farm_seams(monkeypatch) -> dict[str, list[Any]]:
    """The Swarm and MariaDB, as seen by the provision steps: creating the stack fails."""
    calls: dict[str, list[Any]] = {"removed": [], "dropped": []}

    def apply_stack(spec: Any, log: Any) -> list[str]:
        raise FarmError("no suitable node (test)")

    def remove_stack(site_id: int, log: Any) -> bool:
        calls["removed"].append(site_id)
        return True

    def drop(*, name: str, user: str) -> list[str]:
        calls["dropped"].append(name)
        return []

    monkeypatch.setattr("sites.swarm_site.apply_stack", apply_stack)
    monkeypatch.setattr("sites.swarm_site.remove_stack", remove_stack)
    monkeypatch.setattr("sites.swarm_site.stack_state", lambda site_id: [])
    monkeypatch.setattr("nodes.mariadb.ensure_site_database", lambda **kw: [])
    monkeypatch.setattr("nodes.mariadb.drop_site_database", drop)
    return calls


def test_item_7_a_failed_drill_removes_its_preview(site, worker_node, farm_seams):
    drill = start_beside(site, None, drill=True)
    assert drill.operation is not None

    assert run_operation(drill.operation.pk) == "failed"
    drill.refresh_from_db()
    preview = drill.preview_site
    assert preview is not None
    assert preview.status == SiteStatus.FAILED, "deletable at once, whatever happens next"
    operation = Operation.objects.get(pk=drill.operation.pk)
    assert operation.status == OperationStatus.QUEUED and operation.mode == "rollback"

    assert run_operation(drill.operation.pk) == "rolled_back"
    preview.refresh_from_db()
    assert preview.status == SiteStatus.DELETED and preview.domain_claim is None
    assert farm_seams["removed"] == [preview.pk], "its stack"
    assert farm_seams["dropped"] == [preview.db_name], "its database"
    assert not files.site_path(preview.pk).exists(), "its files"
    drill.refresh_from_db()
    assert drill.status == RestoreStatus.FAILED and "no suitable node" in drill.error


def test_item_7_a_preview_whose_clean_up_failed_can_be_deleted_from_the_panel(
    operator, site, worker_node, farm_seams, monkeypatch
):
    def swarm_down(site_id: int, log: Any) -> bool:
        raise FarmError("the Swarm does not answer (test)")

    restore = start_beside(site, operator)
    assert restore.operation is not None
    assert run_operation(restore.operation.pk) == "failed"
    monkeypatch.setattr("sites.swarm_site.remove_stack", swarm_down)
    run_operation(restore.operation.pk)  # the clean-up, which fails too
    assert run_operation(restore.operation.pk) == "not claimed", "and is not tried forever"

    restore.refresh_from_db()
    preview = restore.preview_site
    assert preview is not None
    assert preview.status == SiteStatus.FAILED and preview.can_delete()
    response = client_for(operator).post(
        reverse("site_delete", args=[preview.pk]), {"confirm_domain": preview.domain}
    )
    assert response.status_code == 302
    assert Operation.objects.filter(kind="site.delete", target_id=str(preview.pk)).exists()


def test_item_7_a_cancelled_restore_beside_leaves_a_preview_that_can_be_deleted(
    owner, site, worker_node
):
    restore = start_beside(site, owner)
    assert restore.operation is not None
    cancel_operation(restore.operation)

    restore.refresh_from_db()
    preview = restore.preview_site
    assert preview is not None
    assert preview.status == SiteStatus.FAILED and preview.can_delete()


def test_item_7_previews_stuck_restoring_from_before_are_made_deletable(owner, site):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("backups.migrations.0006_stuck_previews_can_be_deleted")
    stuck = Site.objects.create(
        tenant=site.tenant, domain=f"restore-{site.pk}-202612010959.localhost", status="restoring"
    )
    Restore.objects.create(
        site=site,
        scope=RestoreScope.BOTH,
        target=RestoreTarget.BESIDE,
        point_in_time=timezone.now(),
        status=RestoreStatus.FAILED,
        preview_site=stuck,
    )

    migration.mark_stuck_previews_failed(apps, None)

    stuck.refresh_from_db()
    assert stuck.status == SiteStatus.FAILED and stuck.can_delete()
