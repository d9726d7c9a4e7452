"""The RPO ledger: for every site, the newest snapshot that is really in the repository.

It reads ``restic snapshots --json`` (one call for the whole farm), never the
panel's own Backup rows, because a row can say "succeeded" for a snapshot that
retention or an accident has since removed. Sizes come from the Backup rows
that match a snapshot id (restic 0.14 does not list sizes); a snapshot whose
size dropped by more than half from the previous one of its kind is flagged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from django.core.cache import cache
from django.utils import timezone

from backups import restic
from backups.models import RPO_TARGET, Backup, BackupKind
from monitoring.alerts import raise_alert, resolve_alert
from monitoring.models import Alert, AlertStatus

CACHE_KEY = "backups:rpo-snapshots"
CACHE_SECONDS = 60
ALERT_PREFIX = "rpo-breached-site-"
UNREADABLE_ALERT = "rpo-repository-unreadable"


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

    @property
    def age(self) -> timedelta | None:
        return None if self.newest_db is None else timezone.now() - self.newest_db

    @property
    def time_left(self) -> timedelta | None:
        return None if self.age is None else RPO_TARGET - self.age

    @property
    def breached(self) -> bool:
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


def repository_snapshots(*, fresh: bool = False) -> list[restic.Snapshot]:
    if not fresh:
        cached = cache.get(CACHE_KEY)
        if cached is not None:
            return list(cached)
    try:
        snapshots = restic.snapshots(restic.repository_from_settings())
    except restic.ResticError as exc:
        if exc.kind != "not_initialised":
            raise
        snapshots = []  # a farm whose first backup has not run yet: nothing is in it
    cache.set(CACHE_KEY, snapshots, CACHE_SECONDS)
    return snapshots


def ledger(sites: Sequence[RpoSite], *, fresh: bool = False) -> list[LedgerRow]:
    by_site: dict[str, list[restic.Snapshot]] = defaultdict(list)
    for snapshot in repository_snapshots(fresh=fresh):
        if "site" in snapshot.tags:
            by_site[snapshot.tags["site"]].append(snapshot)
    wanted = {str(site.pk) for site in sites}
    sizes = snapshot_sizes([s.id for key in wanted for s in by_site.get(key, [])])
    rows = []
    for site in sites:
        snaps = sorted(by_site.get(str(site.pk), []), key=lambda s: s.time)
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


def snapshot_sizes(ids: list[str], *, batch: int = 5000) -> dict[str, int | None]:
    """Sizes the panel recorded for these snapshots (in batches: a farm has many)."""
    sizes: dict[str, int | None] = {}
    for start in range(0, len(ids), batch):
        rows = Backup.objects.filter(snapshot_id__in=ids[start : start + batch])
        sizes.update(rows.values_list("snapshot_id", "bytes"))
    return sizes


def check_rpo(sites: Sequence[RpoSite]) -> dict[str, int]:
    """Raise an Alert for each of ``sites`` past its RPO; resolve the others' (every 10
    min: ``sites`` are the ones the RPO applies to, any other's alert is over)."""
    try:
        rows = ledger(sites, fresh=True) if sites else []
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


# -- a site's restore points ---------------------------------------------------------


@dataclass(frozen=True)
class SnapshotChoice:
    id: str
    short_id: str
    kind: str
    time: datetime
    bytes: int | None


def site_snapshots(site_id: int) -> list[SnapshotChoice]:
    """The database and files snapshots of a site in the repository, newest first."""
    repo = restic.repository_from_settings()
    snaps = [
        s
        for s in restic.snapshots(repo, tags={"site": str(site_id)})
        if s.tags.get("kind") in ("db", "files")
    ]
    sizes = dict(
        Backup.objects.filter(snapshot_id__in=[s.id for s in snaps]).values_list(
            "snapshot_id", "bytes"
        )
    )
    return sorted(
        (SnapshotChoice(s.id, s.short_id, s.tags["kind"], s.time, sizes.get(s.id)) for s in snaps),
        key=lambda c: c.time,
        reverse=True,
    )


def snapshot_at(site_id: int, kind: str, at: datetime) -> restic.Snapshot | None:
    """The newest snapshot of ``kind`` of the site taken at or before ``at``."""
    repo = restic.repository_from_settings()
    candidates = [
        s for s in restic.snapshots(repo, tags={"site": str(site_id), "kind": kind}) if s.time <= at
    ]
    return max(candidates, key=lambda s: s.time, default=None)
