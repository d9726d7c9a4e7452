"""The RPO ledger: for every site, the newest snapshot that is really in the repository.

The RPO check (a worker task, every 10 minutes) reads ``restic snapshots --json`` (one
call for the whole farm), never the panel's own Backup rows, because a row can say
"succeeded" for a snapshot that retention or an accident has since removed. It
records what it read: the listing (``RepositorySnapshot``, the restore wizard's
points in time) and one ``SiteRpo`` row per watched site (the ledger page and a
site's badge). Pages read those rows and never wait on restic. Sizes come from the
Backup rows that match a snapshot id (restic 0.14 does not list sizes); a snapshot
whose size dropped by more than half from the previous one of its kind is flagged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.db import transaction
from django.db.models import Case, DateTimeField, Max, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from backups import restic
from backups.models import RPO_TARGET, Backup, BackupKind, RepositorySnapshot, SiteRpo
from monitoring.alerts import raise_alert, resolve_alert
from monitoring.models import Alert, AlertStatus

ALERT_PREFIX = "rpo-breached-site-"
UNREADABLE_ALERT = "rpo-repository-unreadable"
BATCH = 1000
# The restore wizard offers at most this many points in time (retention keeps fewer).
MAX_CHOICES = 200


class RpoSite(Protocol):
    """What the ledger reads of a site (a ``sites.models.Site`` is one)."""

    @property
    def pk(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def domain(self) -> str: ...
    @property
    def tenant_id(self) -> int: ...


@dataclass
class SizeDrop:
    kind: str
    snapshot_id: str
    time: datetime
    bytes: int
    previous_bytes: int


@dataclass
class LedgerRow:
    site: RpoSite
    newest_db: datetime | None
    newest_files: datetime | None
    snapshots: int
    drops: list[SizeDrop] = field(default_factory=list)
    # False for a site the RPO check has not measured yet (one made since): pending.
    measured: bool = True
    checked_at: datetime | None = None

    @property
    def age(self) -> timedelta | None:
        return None if self.newest_db is None else timezone.now() - self.newest_db

    @property
    def time_left(self) -> timedelta | None:
        return None if self.age is None else RPO_TARGET - self.age

    @property
    def breached(self) -> bool:
        if not self.measured:
            return False
        if self.age is None:
            # A site is given one RPO period to get its first snapshot.
            return timezone.now() - self.site.created_at > RPO_TARGET
        return self.age > RPO_TARGET

    @property
    def state(self) -> str:
        if self.breached:
            return "breached"
        if self.time_left is not None and self.time_left < timedelta(hours=1):
            return "warning"
        return "ok" if self.newest_db else "pending"


def list_repository() -> list[restic.Snapshot]:
    """Every snapshot in the repository (one ``restic snapshots`` for the farm: worker side)."""
    try:
        return restic.snapshots(restic.repository_from_settings())
    except restic.ResticError as exc:
        if exc.kind != "not_initialised":
            raise
        return []  # a farm whose first backup has not run yet: nothing is in it


def _site_of(snapshot: restic.Snapshot) -> int | None:
    site = snapshot.tags.get("site", "")
    return int(site) if site.isdigit() else None


def record_listing(listing: Sequence[restic.Snapshot], *, now: datetime | None = None) -> int:
    """Make RepositorySnapshot hold exactly ``listing``: rows of snapshots no longer listed
    go, new ones come with the size the panel recorded. A farm's listing is large and
    changes little between two checks, so only the difference is written."""
    now = now or timezone.now()
    listed = {s.id: s for s in listing}
    known = set(RepositorySnapshot.objects.values_list("snapshot_id", flat=True))
    gone = sorted(known - listed.keys())
    for start in range(0, len(gone), BATCH):
        RepositorySnapshot.objects.filter(snapshot_id__in=gone[start : start + BATCH]).delete()
    new = [s for sid, s in listed.items() if sid not in known]
    sizes = snapshot_sizes([s.id for s in new])
    RepositorySnapshot.objects.bulk_create(
        (
            RepositorySnapshot(
                snapshot_id=s.id,
                short_id=s.short_id,
                site_id=_site_of(s),
                kind=s.tags.get("kind", ""),
                time=s.time,
                bytes=sizes.get(s.id),
                listed_at=now,
            )
            for s in new
        ),
        batch_size=BATCH,
    )
    # A size the panel recorded after the snapshot was first listed.
    unsized = list(
        RepositorySnapshot.objects.filter(bytes__isnull=True, site__isnull=False).values_list(
            "snapshot_id", flat=True
        )
    )
    for sid, size in snapshot_sizes(unsized).items():
        if size is not None:
            RepositorySnapshot.objects.filter(snapshot_id=sid).update(bytes=size)
    return len(new)


def measure(sites: Sequence[RpoSite], listing: Sequence[restic.Snapshot]) -> list[LedgerRow]:
    """Each site's newest snapshots of each kind in ``listing`` and its size drops (sizes
    read from RepositorySnapshot, as recorded with the listing)."""
    by_site: dict[int, list[restic.Snapshot]] = defaultdict(list)
    for snapshot in listing:
        site_id = _site_of(snapshot)
        if site_id is not None:
            by_site[site_id].append(snapshot)
    sizes = dict(
        RepositorySnapshot.objects.filter(bytes__isnull=False).values_list("snapshot_id", "bytes")
    )
    rows = []
    for site in sites:
        snaps = sorted(by_site.get(site.pk, []), key=lambda s: s.time)
        newest: dict[str, datetime] = {}
        drops = []
        previous: dict[str, int] = {}
        for snap in snaps:
            kind = snap.tags.get("kind", "")
            newest[kind] = snap.time
            size = sizes.get(snap.id)
            if size is None or kind == BackupKind.CONFIG:
                continue
            if kind in previous and previous[kind] > 0 and size < previous[kind] / 2:
                drops.append(SizeDrop(kind, snap.id, snap.time, size, previous[kind]))
            previous[kind] = size
        rows.append(
            LedgerRow(
                site=site,
                newest_db=newest.get(BackupKind.DB),
                newest_files=newest.get(BackupKind.FILES),
                snapshots=len(snaps),
                drops=drops,
            )
        )
    return rows


def record_ledger(rows: Sequence[LedgerRow], *, now: datetime) -> None:
    """The ledger's rows, one per watched site, replacing the last check's."""
    with transaction.atomic():
        SiteRpo.objects.all().delete()
        SiteRpo.objects.bulk_create(
            (
                SiteRpo(
                    site_id=row.site.pk,
                    newest_db=row.newest_db,
                    newest_files=row.newest_files,
                    snapshots=row.snapshots,
                    drops=[
                        {**asdict(d), "time": d.time.isoformat()}  # JSON has no datetimes
                        for d in row.drops
                    ],
                    checked_at=now,
                )
                for row in rows
            ),
            batch_size=BATCH,
        )


def snapshot_sizes(ids: list[str]) -> dict[str, int | None]:
    """Sizes the panel recorded for these snapshots (in batches: a farm has many)."""
    sizes: dict[str, int | None] = {}
    for start in range(0, len(ids), BATCH):
        rows = Backup.objects.filter(snapshot_id__in=ids[start : start + BATCH])
        sizes.update(rows.values_list("snapshot_id", "bytes"))
    return sizes


def check_rpo(sites: Sequence[RpoSite]) -> dict[str, int]:
    """List the repository, record the listing and each of ``sites``' ledger row; raise
    an Alert for each site past its RPO and resolve the others' (every 10 min: ``sites``
    are the ones the RPO applies to, any other's alert is over)."""
    now = timezone.now()
    try:
        listing = list_repository() if sites else []
    except restic.ResticError as exc:
        raise_alert(
            fingerprint=UNREADABLE_ALERT,
            name="RepositoryUnreadable",
            severity="critical",
            source="rpo",
            summary="The RPO cannot be measured: the backup repository cannot be read",
            description=exc.message,
        )
        raise
    resolve_alert(UNREADABLE_ALERT)
    if sites:  # with none, the repository was not read: its rows stay as they were
        record_listing(listing, now=now)
    rows = measure(sites, listing)
    record_ledger(rows, now=now)
    breached: list[str] = []
    for row in rows:
        if not row.breached:
            continue
        fingerprint = f"{ALERT_PREFIX}{row.site.pk}"
        breached.append(fingerprint)
        age = (
            "no snapshot at all"
            if row.age is None
            else (f"the newest database snapshot is {row.age.total_seconds() / 3600:.1f} h old")
        )
        raise_alert(
            fingerprint=fingerprint,
            name="RPOBreached",
            severity="critical",
            site_id=row.site.pk,
            tenant_id=row.site.tenant_id,
            source="rpo",
            summary=f"{row.site.domain} is past its 6 h RPO",
            description=f"In the repository, {age}.",
        )
    # Every other RPO alert is over: its site has a fresh snapshot, or is no longer
    # watched (deleted since). One UPDATE, however many sites the farm has.
    Alert.objects.filter(fingerprint__startswith=ALERT_PREFIX, status=AlertStatus.FIRING).exclude(
        fingerprint__in=breached
    ).update(status=AlertStatus.RESOLVED, resolved_at=timezone.now())
    return {"breached": len(breached)}


# -- what the pages read (rows the RPO check wrote; never restic) ---------------------------


def ledger_row(site: RpoSite) -> LedgerRow:
    """A site's ledger row from its ``SiteRpo`` (``site.rpo``, select_related by the
    caller); a site the check has not measured yet is pending."""
    record: SiteRpo | None = getattr(site, "rpo", None)
    if record is None:
        return LedgerRow(site=site, newest_db=None, newest_files=None, snapshots=0, measured=False)
    return LedgerRow(
        site=site,
        newest_db=record.newest_db,
        newest_files=record.newest_files,
        snapshots=record.snapshots,
        drops=[SizeDrop(**{**d, "time": datetime.fromisoformat(d["time"])}) for d in record.drops],
        checked_at=record.checked_at,
    )


def breached(now: datetime) -> Q:
    """The sites (a queryset of sites with their ``rpo``) past their RPO at ``now``."""
    cutoff = now - RPO_TARGET
    never = Q(rpo__isnull=False, rpo__newest_db__isnull=True, created_at__lt=cutoff)
    return Q(rpo__newest_db__lt=cutoff) | never


def ledger_order(now: datetime) -> list[Any]:
    """The ledger's order: the breached first, then by time left (least first), the
    sites without a snapshot counting as a full period left."""
    return [
        Case(When(breached(now), then=Value(0)), default=Value(1)),
        Coalesce("rpo__newest_db", Value(now, output_field=DateTimeField())),
        "domain",
        "pk",
    ]


def last_checked() -> datetime | None:
    return SiteRpo.objects.aggregate(at=Max("checked_at"))["at"]


def repository_unreadable() -> str:
    """Why the last RPO check could not read the repository ("" when it could)."""
    alert = Alert.objects.filter(fingerprint=UNREADABLE_ALERT, status=AlertStatus.FIRING).first()
    return alert.description if alert else ""


# -- a site's restore points ---------------------------------------------------------


@dataclass(frozen=True)
class SnapshotChoice:
    id: str
    short_id: str
    kind: str
    time: datetime
    bytes: int | None


def site_snapshots(site_id: int) -> list[SnapshotChoice]:
    """The database and files snapshots of a site in the repository, newest first, as
    the RPO check last listed them (``snapshot_at`` reads the repository itself when
    a restore starts)."""
    rows = RepositorySnapshot.objects.filter(
        site_id=site_id, kind__in=[BackupKind.DB, BackupKind.FILES]
    ).order_by("-time")[:MAX_CHOICES]
    return [
        SnapshotChoice(r.snapshot_id, r.short_id, r.kind, r.time, r.bytes)
        for r in rows.only("snapshot_id", "short_id", "kind", "time", "bytes")
    ]


def snapshot_at(site_id: int, kind: str, at: datetime) -> restic.Snapshot | None:
    """The newest snapshot of ``kind`` of the site taken at or before ``at``."""
    repo = restic.repository_from_settings()
    candidates = [
        s for s in restic.snapshots(repo, tags={"site": str(site_id), "kind": kind}) if s.time <= at
    ]
    return max(candidates, key=lambda s: s.time, default=None)
