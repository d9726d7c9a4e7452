"""Fill an empty panel database with a farm of thousands of sites, to measure the pages.

    FARM_ENV=development FARM_VAR_DIR=var/scale python manage.py seed_scale --sites 5000

Rows only: 200 tenants (an owner each) and an operator, ``--sites`` sites with their
backup policies, 20 backups per site, 30,000 operations of 8 steps, 2,000 alerts, and
the repository's snapshot listing and the RPO ledger as the RPO check records them (one snapshot per
succeeded site backup). Nothing touches Docker, restic or MariaDB. Everything is
written with ``bulk_create``; on a database that already has sites it refuses, and it
never runs with ``FARM_ENV=production``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.utils import timezone

from backups import policy, restic
from backups.models import Backup, BackupKind, BackupPolicy, BackupStatus
from farm.models import Membership, Operation, OperationStep, Tenant, User
from monitoring.models import Alert
from sites import services
from sites.models import Site, SiteStatus

TENANTS = 200
BACKUPS_PER_SITE = 20
OPERATIONS = 30_000
STEPS_PER_OPERATION = 8
ALERTS = 2_000
BATCH = 2_000
OPERATOR_EMAIL = "scale-ops@farm.localhost"
KINDS = (BackupKind.DB, BackupKind.DB, BackupKind.FILES, BackupKind.CONFIG)
OPERATION_KINDS = ("backup.site", "site.provision", "site.suspend", "site.resume", "restore.site")
STEP_NAMES = ("plan", "claim", "prepare", "database", "files", "converge", "verify", "record")


def owner_email(tenant_index: int) -> str:
    return f"owner-{tenant_index}@scale.localhost"


def site_domain(n: int, tenant_slug: str) -> str:
    # One site in ten has an internationalised name (shown decoded, stored as IDNA).
    if n % 10 == 0:
        return f"s{n}.xn--bcher-kva.{tenant_slug}.test"
    return f"s{n}.{tenant_slug}.test"


def snapshot_id(n: int) -> str:
    return hashlib.sha256(f"scale-snapshot-{n}".encode()).hexdigest()


@contextmanager
def own_timestamps(*fields: models.DateTimeField) -> Iterator[None]:
    """Let bulk_create keep the times given (auto_now_add would stamp every row now)."""
    saved = [(f, f.auto_now_add) for f in fields]
    for f, _ in saved:
        f.auto_now_add = False
    try:
        yield
    finally:
        for f, value in saved:
            f.auto_now_add = value


def _field(model: type[models.Model], name: str) -> models.DateTimeField:
    field = model._meta.get_field(name)
    assert isinstance(field, models.DateTimeField)
    return field


def repository_listing() -> list[restic.Snapshot]:
    """The snapshots the seeded backups made, as ``restic snapshots`` would list them."""
    rows = Backup.objects.filter(status=BackupStatus.SUCCEEDED, site__isnull=False).exclude(
        snapshot_id=""
    )
    return [
        restic.Snapshot(
            id=sid,
            short_id=sid[:8],
            time=created,
            tags={"site": str(site_id), "kind": kind},
            paths=[f"/{kind}"],
            hostname="seed",
        )
        for sid, created, site_id, kind in rows.values_list(
            "snapshot_id", "created_at", "site_id", "kind"
        ).iterator(chunk_size=BATCH)
    ]


class Command(BaseCommand):
    help = "Fill an empty (development or test) panel database with a large farm's rows."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sites", type=int, default=5000)
        parser.add_argument("--operations", type=int, default=OPERATIONS)
        parser.add_argument("--alerts", type=int, default=ALERTS)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.FARM_ENV not in ("development", "test"):
            raise CommandError("seed_scale only runs with FARM_ENV=development or test.")
        n_sites = int(options["sites"])
        if n_sites < 1:
            raise CommandError("--sites must be at least 1.")
        if Site.objects.exists() or Tenant.objects.exists():
            raise CommandError(
                f"This database already has {Site.objects.count()} sites and "
                f"{Tenant.objects.count()} tenants: seed_scale fills an empty one only "
                "(point FARM_VAR_DIR or DATABASE_URL at a new database)."
            )
        started = time.monotonic()
        with transaction.atomic():
            counts = seed(
                n_sites,
                now=timezone.now(),
                operations=int(options["operations"]),
                alerts=int(options["alerts"]),
            )
        counts_text = ", ".join(f"{n} {what}" for what, n in counts.items())
        self.stdout.write(f"Seeded {counts_text} in {time.monotonic() - started:.1f} s.")


def seed(
    n_sites: int, *, now: datetime, operations: int = OPERATIONS, alerts: int = ALERTS
) -> dict[str, int]:
    User.objects.create_user(OPERATOR_EMAIL, None, is_staff=True, is_superuser=True)
    tenants = Tenant.objects.bulk_create(
        Tenant(name=f"Tenant {i}", slug=f"t{i}", site_quota=n_sites) for i in range(TENANTS)
    )
    owners = User.objects.bulk_create(
        User(email=owner_email(i), password=make_password(None)) for i in range(TENANTS)
    )
    Membership.objects.bulk_create(
        Membership(user=u, tenant=t, role=Membership.Role.OWNER)
        for u, t in zip(owners, tenants, strict=True)
    )

    sites = _seed_sites(n_sites, tenants, now)
    backups = _seed_backups(sites, now)
    made_operations, steps = _seed_operations(sites, now, operations)
    made_alerts = _seed_alerts(sites, now, alerts)
    snapshots = record_listing(repository_listing(), now=now)
    return {
        "tenants": len(tenants),
        "sites": len(sites),
        "backups": backups,
        "operations": made_operations,
        "steps": steps,
        "alerts": made_alerts,
        "snapshots": snapshots,
    }


def record_listing(listing: list[restic.Snapshot], *, now: datetime) -> int:
    """Record the listing and the ledger as the RPO check does after reading restic."""
    policy.record_listing(listing, now=now)
    policy.record_ledger(policy.measure(services.live_sites(), listing), now=now)
    return len(listing)


def _status(n: int) -> str:
    if n % 50 == 7:
        return SiteStatus.SUSPENDED
    if n % 100 == 13:
        return SiteStatus.FAILED
    if n % 100 == 29:
        return SiteStatus.DELETED
    return SiteStatus.ACTIVE


def _seed_sites(n_sites: int, tenants: list[Tenant], now: datetime) -> list[Site]:
    made = []
    for n in range(n_sites):
        tenant = tenants[n % len(tenants)]
        status = _status(n)
        domain = site_domain(n, tenant.slug)
        made.append(
            Site(
                tenant=tenant,
                domain=domain,
                domain_claim=None if status == SiteStatus.DELETED else domain,
                status=status,
                db_name=f"wp_seed{n}",
                db_user=f"wp_seed{n}",
                db_password=f"seed-password-{n}",
                wp_salts='{"AUTH_KEY": "seed"}',
                created_at=now - timedelta(days=30, minutes=n),
                activated_at=now - timedelta(days=30, minutes=n),
            )
        )
    with own_timestamps(_field(Site, "created_at")):
        sites = Site.objects.bulk_create(made, batch_size=BATCH)
    BackupPolicy.objects.bulk_create(
        (BackupPolicy(site=s) for s in sites if s.status != SiteStatus.DELETED), batch_size=BATCH
    )
    return sites


def _seed_backups(sites: list[Site], now: datetime) -> int:
    def rows() -> Iterator[Backup]:
        n = 0
        for site in sites:
            for i in range(BACKUPS_PER_SITE):
                n += 1
                kind = KINDS[i % len(KINDS)]
                failed = n % 40 == 0
                created = now - timedelta(hours=6 * i + 1, minutes=site.pk % 300)
                yield Backup(
                    site=site,
                    kind=kind,
                    status=BackupStatus.FAILED if failed else BackupStatus.SUCCEEDED,
                    snapshot_id="" if failed else snapshot_id(n),
                    repository="seed",
                    bytes=None if failed else 10_000_000 + (n % 997) * 1000,
                    duration_ms=1200,
                    error="seeded failure" if failed else "",
                    created_at=created,
                    started_at=created,
                    finished_at=created + timedelta(seconds=2),
                )
        for day in range(30):
            created = now - timedelta(days=day, hours=4)
            yield Backup(
                kind=BackupKind.CLUSTER,
                status=BackupStatus.SUCCEEDED,
                snapshot_id=snapshot_id(-day - 1),
                bytes=5_000_000_000,
                created_at=created,
            )

    total = 0
    with own_timestamps(_field(Backup, "created_at")):
        batch: list[Backup] = []
        for backup in rows():
            batch.append(backup)
            if len(batch) == BATCH:
                total += len(Backup.objects.bulk_create(batch))
                batch = []
        total += len(Backup.objects.bulk_create(batch))
    return total


def _seed_operations(sites: list[Site], now: datetime, count: int) -> tuple[int, int]:
    done = 0
    steps = 0
    with own_timestamps(_field(Operation, "created_at")):
        for start in range(0, count, BATCH):
            made = []
            for n in range(start, min(start + BATCH, count)):
                site = sites[n % len(sites)]
                created = now - timedelta(minutes=7 * n)
                made.append(
                    Operation(
                        kind=OPERATION_KINDS[n % len(OPERATION_KINDS)],
                        target_type="site",
                        target_id=str(site.pk),
                        target_repr=site.domain,
                        lock_name=f"site:{site.pk}",
                        tenant_id=site.tenant_id,
                        status="failed" if n % 25 == 0 else "succeeded",
                        error="seeded failure" if n % 25 == 0 else "",
                        created_at=created,
                        started_at=created,
                        finished_at=created + timedelta(seconds=30),
                        attempts=1,
                    )
                )
            operations = Operation.objects.bulk_create(made)
            steps += len(
                OperationStep.objects.bulk_create(
                    OperationStep(
                        operation=op,
                        position=p,
                        name=name,
                        label=name.capitalize(),
                        status="succeeded",
                        attempts=1,
                        duration_ms=500,
                        log=f"{name} done\n",
                    )
                    for op in operations
                    for p, name in enumerate(STEP_NAMES[:STEPS_PER_OPERATION], start=1)
                )
            )
            done += len(operations)
    return done, steps


def _seed_alerts(sites: list[Site], now: datetime, count: int) -> int:
    alerts = []
    for n in range(count):
        site = sites[(n * 7) % len(sites)]
        started = now - timedelta(minutes=11 * n)
        firing = n % 10 == 0
        alerts.append(
            Alert(
                fingerprint=f"seed-{n}",
                source="rpo" if n % 3 == 0 else "alertmanager",
                name="RPOBreached" if n % 3 == 0 else "SiteDown",
                severity="critical" if n % 2 else "warning",
                status="firing" if firing else "resolved",
                summary=f"{site.domain} needs attention",
                tenant_id=site.tenant_id,
                site=site,
                started_at=started,
                last_seen_at=started,
                resolved_at=None if firing else started + timedelta(minutes=5),
            )
        )
    return len(Alert.objects.bulk_create(alerts, batch_size=BATCH))
