"""The backup scheduler: what falls due, the constant-cost tick that claims it, the worker
that starts one backup per claimed site, "Back up now", and the back-off after a failure.

No Swarm and no restic here: operations are only created (never run), and the queue is a
recorder standing in for django_q's ``async_task``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backups import policy as schedule
from backups.models import BackupPolicy
from farm.errors import OperationConflict
from farm.models import Operation, OperationStatus, Tenant
from farm.operations import get_kind, start_operation
from monitoring.models import Alert, AlertStatus
from sites import services, tasks
from sites.models import Site, SiteStatus
from sites.operations import backup_alert_fingerprint
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def queue(monkeypatch) -> list[tuple]:
    """What was handed to django_q (the tick imports async_task when it runs)."""
    calls: list[tuple] = []
    monkeypatch.setattr(
        "django_q.tasks.async_task", lambda *args, **kwargs: calls.append((args, kwargs))
    )
    return calls


def make_sites(tenant: Tenant, count: int, *, prefix: str, status: str = "active") -> list[Site]:
    return Site.objects.bulk_create(
        Site(tenant=tenant, domain=f"{prefix}{i}.acme.test", status=status) for i in range(count)
    )


def due_policies(sites: list[Site], *, at: datetime, **fields) -> list[BackupPolicy]:
    return BackupPolicy.objects.bulk_create(
        BackupPolicy(site=site, next_db_at=at, next_files_at=at, **fields) for site in sites
    )


def make_site_with_policy(tenant: Tenant, domain: str, **fields) -> tuple[Site, BackupPolicy]:
    site = Site.objects.create(tenant=tenant, domain=domain, status=SiteStatus.ACTIVE)
    return site, BackupPolicy.objects.create(site=site, **fields)


def finish(operation: Operation) -> None:
    """What the runner does when an operation ends: the lock is released."""
    Operation.objects.filter(pk=operation.pk).update(
        status=OperationStatus.SUCCEEDED, lock_key=None, finished_at=timezone.now()
    )


# -- when things fall due --------------------------------------------------------------


def test_the_database_is_due_at_the_earlier_of_the_interval_and_the_daily_slot():
    policy = BackupPolicy(db_daily_at=time(2, 0), db_every_hours=6)
    assert schedule.next_db_due(policy, NOON) == NOON + timedelta(hours=6)
    late_evening = NOON.replace(hour=22)
    assert schedule.next_db_due(policy, late_evening) == datetime(2025, 3, 11, 2, 0, tzinfo=UTC)
    daily_only = BackupPolicy(db_daily_at=time(2, 0), db_every_hours=0)
    assert schedule.next_db_due(daily_only, NOON) == datetime(2025, 3, 11, 2, 0, tzinfo=UTC)


def test_files_are_due_at_their_daily_slot():
    policy = BackupPolicy(files_daily_at=time(3, 0))
    assert schedule.next_files_due(policy, NOON) == datetime(2025, 3, 11, 3, 0, tzinfo=UTC)
    early = NOON.replace(hour=1)
    assert schedule.next_files_due(policy, early) == datetime(2025, 3, 10, 3, 0, tzinfo=UTC)


def test_a_new_site_gets_its_first_database_backup_within_minutes():
    db_at, files_at = schedule.first_due_times(BackupPolicy(files_daily_at=time(3, 0)), NOON)
    assert NOON < db_at <= NOON + timedelta(minutes=5)
    assert files_at == datetime(2025, 3, 11, 3, 0, tzinfo=UTC)


def test_back_off_is_5_15_45_minutes_then_the_schedule():
    assert schedule.retry_after_failure(1, NOON) == NOON + timedelta(minutes=5)
    assert schedule.retry_after_failure(2, NOON) == NOON + timedelta(minutes=15)
    assert schedule.retry_after_failure(3, NOON) == NOON + timedelta(minutes=45)
    assert schedule.retry_after_failure(4, NOON) is None
    assert schedule.retry_after_failure(0, NOON) is None


# -- the tick ----------------------------------------------------------------------------


def test_the_tick_costs_the_same_queries_for_5_and_5000_due_sites(tenant, queue):
    now = timezone.now()
    due_policies(make_sites(tenant, 5, prefix="few"), at=now - timedelta(minutes=1))
    with CaptureQueriesContext(connection) as few:
        assert tasks.backup_tick(now) == 10, "database and files of 5 sites"
    assert len(queue) == 1

    BackupPolicy.objects.update(
        db_claimed_at=None, files_claimed_at=None, next_db_at=None, next_files_at=None
    )
    due_policies(make_sites(tenant, 5000, prefix="many"), at=now - timedelta(minutes=1))
    with CaptureQueriesContext(connection) as many:
        assert tasks.backup_tick(now) == 10000
    assert len(many.captured_queries) == len(few.captured_queries)
    assert len(queue) == 2, "one task per tick, however many sites are due"
    assert queue[-1][0] == ("sites.tasks.start_claimed_backups",)


def test_a_second_tick_right_after_claims_nothing_and_enqueues_nothing(tenant, queue):
    now = timezone.now()
    due_policies(make_sites(tenant, 3, prefix="s"), at=now)
    assert tasks.backup_tick(now) == 6
    assert tasks.backup_tick(now + timedelta(seconds=30)) == 0
    assert len(queue) == 1


def test_nothing_due_enqueues_nothing(tenant, queue):
    now = timezone.now()
    due_policies(make_sites(tenant, 3, prefix="s"), at=now + timedelta(minutes=1))
    assert tasks.backup_tick(now) == 0
    assert queue == []


def test_disabled_policies_and_deleted_or_failed_sites_are_not_claimed(tenant, queue):
    now = timezone.now()
    due_policies(make_sites(tenant, 1, prefix="off"), at=now, enabled=False)
    due_policies(make_sites(tenant, 1, prefix="gone", status=SiteStatus.DELETED), at=now)
    due_policies(make_sites(tenant, 1, prefix="broken", status=SiteStatus.FAILED), at=now)
    due_policies(make_sites(tenant, 1, prefix="paused", status=SiteStatus.SUSPENDED), at=now)
    assert tasks.backup_tick(now) == 2, "only the suspended site's database and files"
    claimed = BackupPolicy.objects.filter(db_claimed_at__isnull=False)
    assert [p.site.domain for p in claimed] == ["paused0.acme.test"]


def test_a_claim_left_behind_is_handed_to_the_worker_again_by_a_later_tick(tenant, queue):
    now = timezone.now()
    due_policies(make_sites(tenant, 1, prefix="s"), at=now)
    tasks.backup_tick(now)
    # The worker has not started it (its site was busy, or the task was lost).
    assert tasks.backup_tick(now + timedelta(minutes=5)) == 0
    assert len(queue) == 2, "a later tick enqueues the worker again for the old claim"


# -- the worker: start what was claimed ------------------------------------------------------


def test_each_claimed_policy_starts_one_backup_of_what_was_claimed(tenant):
    both, p_both = make_site_with_policy(
        tenant, "both.acme.test", next_db_at=NOON, next_files_at=NOON
    )
    db_only, p_db = make_site_with_policy(
        tenant, "db.acme.test", next_db_at=NOON, next_files_at=NOON + timedelta(hours=15)
    )
    _, p_idle = make_site_with_policy(
        tenant,
        "idle.acme.test",
        next_db_at=NOON + timedelta(hours=1),
        next_files_at=NOON + timedelta(hours=15),
    )
    assert tasks.backup_tick(NOON) == 3

    assert services.start_claimed_backups(NOON) == {"started": 2, "busy": 0, "dropped": 0}

    operations = {op.target_id: op for op in Operation.objects.filter(kind="backup.site")}
    assert set(operations) == {str(both.pk), str(db_only.pk)}
    assert operations[str(both.pk)].params == {
        "kinds": ["db", "files"],
        "reason": "scheduled",
        "attempt": 1,
    }
    assert operations[str(db_only.pk)].params["kinds"] == ["db"]

    p_both.refresh_from_db()
    assert p_both.next_db_at == NOON + timedelta(hours=6), "6 h comes before 02:00"
    assert p_both.next_files_at == datetime(2025, 3, 11, 3, 0, tzinfo=UTC)
    assert p_both.db_claimed_at is None and p_both.files_claimed_at is None
    p_db.refresh_from_db()
    assert p_db.next_files_at == NOON + timedelta(hours=15), "files were not due: unchanged"
    p_idle.refresh_from_db()
    assert p_idle.next_db_at == NOON + timedelta(hours=1)
    assert services.start_claimed_backups(NOON) == {"started": 0, "busy": 0, "dropped": 0}


def test_late_in_the_evening_the_daily_slot_comes_first(tenant):
    evening = NOON.replace(hour=22)
    _, policy = make_site_with_policy(tenant, "late.acme.test", next_db_at=evening)
    tasks.backup_tick(evening)
    services.start_claimed_backups(evening)
    policy.refresh_from_db()
    assert policy.next_db_at == datetime(2025, 3, 11, 2, 0, tzinfo=UTC)


def test_a_site_held_by_another_operation_stays_claimed_until_it_is_free(tenant):
    site, policy = make_site_with_policy(tenant, "busy.acme.test", next_db_at=NOON)
    restore = start_operation(
        "test.recorded", target_type="test", target_id="restore", lock_name=f"site:{site.pk}"
    )
    tasks.backup_tick(NOON)

    assert services.start_claimed_backups(NOON) == {"started": 0, "busy": 1, "dropped": 0}
    policy.refresh_from_db()
    assert policy.db_claimed_at == NOON, "left claimed"
    assert policy.next_db_at == NOON
    assert not Operation.objects.filter(kind="backup.site").exists()

    finish(restore)
    later = NOON + timedelta(minutes=3)
    assert services.start_claimed_backups(later) == {"started": 1, "busy": 0, "dropped": 0}
    policy.refresh_from_db()
    assert policy.db_claimed_at is None
    assert policy.next_db_at == later + timedelta(hours=6)
    assert Operation.objects.get(kind="backup.site").target_id == str(site.pk)


def test_a_claim_on_a_site_deleted_since_the_tick_is_dropped_not_started(tenant, queue):
    site, _ = make_site_with_policy(tenant, "bye.acme.test", next_db_at=NOON)
    _, disabled = make_site_with_policy(tenant, "off.acme.test", next_db_at=NOON)
    tasks.backup_tick(NOON)
    Site.objects.filter(pk=site.pk).update(status=SiteStatus.DELETED)
    BackupPolicy.objects.filter(pk=disabled.pk).update(enabled=False)

    assert services.start_claimed_backups(NOON) == {"started": 0, "busy": 0, "dropped": 2}
    assert not Operation.objects.exists()
    assert not BackupPolicy.objects.filter(db_claimed_at__isnull=False).exists()
    tasks.backup_tick(NOON + timedelta(minutes=10))
    assert len(queue) == 1, "nothing left behind to hand over again"


def test_a_scheduled_backup_after_failures_counts_its_attempt(tenant):
    make_site_with_policy(tenant, "flaky.acme.test", next_db_at=NOON, failures=2)
    tasks.backup_tick(NOON)
    services.start_claimed_backups(NOON)
    assert Operation.objects.get(kind="backup.site").params["attempt"] == 3


# -- Back up now ---------------------------------------------------------------------------


def test_back_up_now_twice_starts_one_operation_and_says_why_the_second_time(owner, tenant):
    site, _ = make_site_with_policy(tenant, "shop.acme.test")
    client = client_for(owner)
    first = client.post(reverse("back_up_now", args=[site.pk]))
    assert first.status_code == 302 and first["Location"] == reverse("site_detail", args=[site.pk])
    operation = Operation.objects.get()
    assert operation.kind == "backup.site"
    assert operation.params["kinds"] == ["db", "files", "config"]
    assert operation.params["reason"] == "manual"

    second = client.post(reverse("back_up_now", args=[site.pk]))
    assert second.status_code == 302
    errors = [str(m) for m in get_messages(second.wsgi_request) if m.level_tag == "error"]
    assert len(errors) == 1 and "already has an unfinished operation" in errors[0]
    assert Operation.objects.count() == 1


def test_back_up_now_conflicts_in_the_service_too(owner, tenant):
    site, _ = make_site_with_policy(tenant, "shop.acme.test")
    services.back_up_now(site=site, actor=owner)
    with pytest.raises(OperationConflict, match="already has an unfinished operation"):
        services.back_up_now(site=site, actor=owner)


def test_back_up_now_permissions_and_method(owner, member, outsider, tenant):
    site, _ = make_site_with_policy(tenant, "shop.acme.test")
    url = reverse("back_up_now", args=[site.pk])
    assert client_for(outsider).post(url).status_code == 404
    assert client_for(member).post(url).status_code == 403
    assert client_for(owner).get(url).status_code == 405
    assert not Operation.objects.exists()


def test_a_site_that_is_not_running_cannot_be_backed_up_now(owner, tenant):
    site = Site.objects.create(tenant=tenant, domain="new.acme.test", status=SiteStatus.PENDING)
    response = client_for(owner).post(reverse("back_up_now", args=[site.pk]))
    assert response.status_code == 302
    assert [m.level_tag for m in get_messages(response.wsgi_request)] == ["error"]
    assert not Operation.objects.exists()


# -- failure and back-off -----------------------------------------------------------------


def failed_backup(site: Site, *, reason: str = "scheduled") -> Operation:
    return Operation.objects.create(
        kind="backup.site",
        target_type="site",
        target_id=str(site.pk),
        target_repr=site.domain,
        tenant=site.tenant,
        status=OperationStatus.FAILED,
        params={"kinds": ["db"], "reason": reason, "attempt": 1},
        error="Step db: mariadb-dump failed",
    )


def test_a_failed_scheduled_backup_backs_off_and_raises_an_alert(tenant):
    site, policy = make_site_with_policy(
        tenant, "shop.acme.test", next_db_at=timezone.now() + timedelta(hours=6)
    )
    kind = get_kind("backup.site")

    before = timezone.now()
    kind.on_failed(failed_backup(site))
    policy.refresh_from_db()
    assert policy.failures == 1 and policy.next_db_at is not None
    assert (
        before + timedelta(minutes=5) <= policy.next_db_at <= timezone.now() + timedelta(minutes=5)
    )
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.FIRING and alert.source == "backup"
    assert alert.fingerprint == backup_alert_fingerprint(site.pk)
    assert alert.site == site and alert.tenant == tenant
    assert "mariadb-dump failed" in alert.description

    kind.on_failed(failed_backup(site))
    policy.refresh_from_db()
    assert policy.failures == 2 and policy.next_db_at is not None
    assert policy.next_db_at <= timezone.now() + timedelta(minutes=15)
    assert Alert.objects.filter(status=AlertStatus.FIRING).count() == 1, "the same alert"

    kind.on_succeeded(failed_backup(site))
    policy.refresh_from_db()
    assert policy.failures == 0
    assert Alert.objects.get().status == AlertStatus.RESOLVED


def test_after_three_failures_the_schedule_takes_over(tenant):
    scheduled = timezone.now() + timedelta(hours=4)
    site, policy = make_site_with_policy(tenant, "shop.acme.test", next_db_at=scheduled, failures=3)
    get_kind("backup.site").on_failed(failed_backup(site))
    policy.refresh_from_db()
    assert policy.failures == 4
    assert policy.next_db_at == scheduled


def test_a_failed_manual_backup_alerts_but_does_not_touch_the_schedule(tenant):
    scheduled = timezone.now() + timedelta(hours=4)
    site, policy = make_site_with_policy(tenant, "shop.acme.test", next_db_at=scheduled)
    get_kind("backup.site").on_failed(failed_backup(site, reason="manual"))
    policy.refresh_from_db()
    assert policy.failures == 0 and policy.next_db_at == scheduled
    assert Alert.objects.filter(status=AlertStatus.FIRING, source="backup").count() == 1
