"""Cloudflare DNS: the one module that talks to Cloudflare, through its official SDK.

A site's domain gets exactly one A, AAAA or CNAME record pointing at the farm's
edge (``DnsConfig.target``). Every call looks at what is in the zone first, so
running a step twice is harmless: ``upsert_record`` creates, fixes or leaves the
record alone and says which; ``delete_records`` deletes the site's records.

The farm touches only records it created. Each carries the mark
``wpfarm site <id> (managed)`` in its Cloudflare comment (``farm_mark``); a name
that has any other A, AAAA, CNAME or NS record (unmarked: someone else's; or
marked for another site) is refused with ``DnsNameTaken`` before anything is
written, and delete leaves such records where they are. Records of other
types (TXT, MX, ...) are never touched. A record marked for a site that no
longer holds the name (deleted, or switched to a restore's preview) is the
farm's own leftover: the caller says which site ids are leftovers
(``is_leftover``), and those records are taken over.

Settings and zone matching are in ``sites.dns_config``, records and their marks in
``sites.dns_records`` (both re-exported here).

Every SDK or transport error leaves this module as ``DnsError`` with a message
for people (including Cloudflare's own error text and code) and whether trying
again can help. The SDK already retries 408/409/429/5xx and connection errors
``max_retries`` times, honouring ``Retry-After``; what still fails is reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import cloudflare
from cloudflare import Cloudflare
from cloudflare.pagination import SyncV4PagePaginationArray

from sites.dns_config import (
    DnsConfig,
    RecordType,
    dns_config_from_settings,
    managed_zone_for,
    managed_zones_from_settings,
    record_for_target,
    zone_containing,
)
from sites.dns_errors import DnsError, DnsNameTaken, translated
from sites.dns_records import (
    SITE_RECORD_TYPES,
    DnsRecord,
    LeftoverCheck,
    RecordResult,
    claimed_by_others,
    comparable,
    farm_mark,
    is_ours,
    marked_site,
    no_leftovers,
)

__all__ = [
    "CloudflareDns",
    "DnsConfig",
    "DnsError",
    "DnsNameTaken",
    "DnsRecord",
    "RecordResult",
    "dns_config_from_settings",
    "farm_mark",
    "managed_zone_for",
    "managed_zones_from_settings",
    "marked_site",
    "record_for_target",
    "zone_containing",
]

DEFAULT_MAX_RETRIES = 2
DEFAULT_TIMEOUT_SECONDS = 30.0
# Cloudflare's default page size for DNS records; one request covers a normal name.
DEFAULT_PER_PAGE = 100
ZONES_PER_PAGE = 50  # the API's maximum for GET /zones


class CloudflareDns:
    """Site records in the farm's Cloudflare zones. Not thread-safe: one per task."""

    def __init__(
        self,
        config: DnsConfig,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        per_page: int = DEFAULT_PER_PAGE,
    ) -> None:
        self.config = config
        self.per_page = per_page
        self._zone_ids: dict[str, str] = {}
        self._client = Cloudflare(
            api_token=config.api_token,
            base_url=config.base_url,
            max_retries=max_retries,
            timeout=timeout,
        )
        # The SDK also picks up CLOUDFLARE_API_KEY / CLOUDFLARE_EMAIL from the
        # environment and prefers them to the token; the farm uses its token only.
        self._client.api_key = None
        self._client.api_email = None
        self._client.user_service_key = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- reading -------------------------------------------------------------

    def zone_id(self, zone_name: str) -> str:
        """Cloudflare's id for a zone the token can see, looked up by name once."""
        if zone_name not in self._zone_ids:
            with translated(f"look up the zone {zone_name}"):
                first = self._client.zones.list(name=zone_name, per_page=ZONES_PER_PAGE)
                ids = [z.id for z in _all_items(first, ZONES_PER_PAGE) if z.name == zone_name]
            if not ids:
                raise DnsError(
                    f"Cloudflare has no zone named {zone_name} that this API token can see: "
                    "check CLOUDFLARE_ZONES and the token's zone resources.",
                    retryable=False,
                )
            self._zone_ids[zone_name] = ids[0]
        return self._zone_ids[zone_name]

    def find_records(self, domain: str) -> list[DnsRecord]:
        """The A, AAAA and CNAME records named exactly ``domain``, whoever made them."""
        return [
            r for r in self._find(self._zone_id_for(domain), domain) if r.type in SITE_RECORD_TYPES
        ]

    def foreign_records(
        self,
        domain: str,
        *,
        site_id: int | None = None,
        is_leftover: LeftoverCheck = no_leftovers,
    ) -> list[DnsRecord]:
        """The records on ``domain`` that say who serves it and are not the farm's to
        change for ``site_id`` (None: a site not created yet, for which only leftovers
        are): unmarked ones, and those marked for another site that is not a leftover."""
        return claimed_by_others(
            self._find(self._zone_id_for(domain), domain), site_id, is_leftover
        )

    def check_name_free(
        self,
        domain: str,
        *,
        site_id: int | None = None,
        is_leftover: LeftoverCheck = no_leftovers,
    ) -> None:
        """Raise DnsNameTaken when ``domain`` has records the farm may not change."""
        foreign = self.foreign_records(domain, site_id=site_id, is_leftover=is_leftover)
        if foreign:
            raise DnsNameTaken(domain, tuple(r.describe() for r in foreign))

    # ---- changing ------------------------------------------------------------

    def upsert_record(
        self, domain: str, *, site_id: int, is_leftover: LeftoverCheck = no_leftovers
    ) -> RecordResult:
        """Make ``domain`` point at the target with exactly one record marked for
        ``site_id``; idempotent. Raises DnsNameTaken (not retryable), before writing
        anything, when the name has a record the farm may not change."""
        zone_id = self._zone_id_for(domain)
        wanted_type, wanted_content = record_for_target(self.config.target)
        existing = self._find(zone_id, domain)
        foreign = claimed_by_others(existing, site_id, is_leftover)
        if foreign:
            raise DnsNameTaken(domain, tuple(r.describe() for r in foreign))
        mine = [r for r in existing if r.type in SITE_RECORD_TYPES]  # all the farm's now
        keeper = self._choose_keeper(mine, wanted_type, site_id)
        others = tuple(r for r in mine if keeper is None or r.id != keeper.id)
        # Others go first: Cloudflare refuses an A record beside a CNAME (81054)
        # and a CNAME beside anything (81053).
        for record in others:
            self._delete(zone_id, record)
        if keeper is None:
            created = self._create(zone_id, domain, wanted_type, wanted_content, site_id)
            # Replacing another type changes what an existing name points at.
            return RecordResult("updated" if others else "created", created, others)
        if self._is_right(keeper, site_id):
            return RecordResult("updated" if others else "unchanged", keeper, others)
        edited = self._edit(zone_id, keeper, wanted_type, wanted_content, site_id)
        return RecordResult("updated", edited, others)

    def delete_records(
        self, domain: str, *, site_id: int, is_leftover: LeftoverCheck = no_leftovers
    ) -> int:
        """Delete the A, AAAA and CNAME records of ``domain`` that the farm made for
        ``site_id`` (or are leftovers); how many went (0 if none). Every other record
        stays: the farm does not delete what it did not create."""
        zone_id = self._zone_id_for(domain)
        ours = [
            record
            for record in self._find(zone_id, domain)
            if record.type in SITE_RECORD_TYPES and is_ours(record, site_id, is_leftover)
        ]
        return sum(self._delete(zone_id, record) for record in ours)

    def adopt_unmarked(self, domain: str, *, site_id: int, apply: bool) -> list[DnsRecord]:
        """For farms upgraded from before the marks: the unmarked records of ``domain``
        that point exactly where the farm's would (same type, content and proxying),
        marked for ``site_id`` when ``apply``. An operator runs this once, knowing
        the site's record was the farm's; a record pointing anywhere else is never
        adopted."""
        zone_id = self._zone_id_for(domain)
        wanted_type, wanted_content = record_for_target(self.config.target)
        candidates = [
            r
            for r in self._find(zone_id, domain)
            if r.farm_site is None
            and r.comment is None
            and r.type == wanted_type
            and comparable(r.type, r.content) == wanted_content
        ]
        if apply:
            for record in candidates:
                self._edit(zone_id, record, wanted_type, wanted_content, site_id)
        return candidates

    # ---- internals -------------------------------------------------------------

    def _zone_id_for(self, domain: str) -> str:
        zone = managed_zone_for(domain, self.config)
        if zone is None:
            raise DnsError(
                f"{domain} is not in a zone the farm manages "
                f"({', '.join(self.config.zones)}); its DNS is not ours to change.",
                retryable=False,
            )
        return self.zone_id(zone)

    def _find(self, zone_id: str, domain: str) -> list[DnsRecord]:
        """Every record named exactly ``domain``, of any type."""
        # One type filter per request is all the API takes, so filter by name
        # only and sort the types out here.
        with translated(f"list the DNS records of {domain}"):
            first = self._client.dns.records.list(
                zone_id=zone_id, name={"exact": domain}, per_page=self.per_page
            )
            found = [_record(r) for r in _all_items(first, self.per_page)]
        # Name filters are case-insensitive on Cloudflare's side; be exact here.
        return [r for r in found if r.name == domain]

    def _choose_keeper(
        self, existing: list[DnsRecord], wanted_type: str, site_id: int
    ) -> DnsRecord | None:
        same_type = [r for r in existing if r.type == wanted_type]
        right = [r for r in same_type if self._is_right(r, site_id)]
        candidates = right or same_type
        return candidates[0] if candidates else None

    def _is_right(self, record: DnsRecord, site_id: int) -> bool:
        wanted_type, wanted_content = record_for_target(self.config.target)
        if record.type != wanted_type or record.proxied != self.config.proxied:
            return False
        if record.comment != farm_mark(site_id):
            return False
        if comparable(record.type, record.content) != wanted_content:
            return False
        # Cloudflare serves proxied records with automatic TTL whatever was sent.
        return self.config.proxied or record.ttl == self.config.ttl

    def _create(
        self, zone_id: str, domain: str, rtype: RecordType, content: str, site_id: int
    ) -> DnsRecord:
        with translated(f"create the {rtype} record for {domain}"):
            created = self._client.dns.records.create(
                zone_id=zone_id,
                name=domain,
                type=rtype,
                content=content,
                proxied=self.config.proxied,
                ttl=self.config.ttl,
                comment=farm_mark(site_id),
            )
        return _required(created, f"creating the record for {domain}")

    def _edit(
        self, zone_id: str, record: DnsRecord, rtype: RecordType, content: str, site_id: int
    ) -> DnsRecord:
        with translated(f"update the {rtype} record for {record.name}"):
            edited = self._client.dns.records.edit(
                record.id,
                zone_id=zone_id,
                name=record.name,
                type=rtype,
                content=content,
                proxied=self.config.proxied,
                ttl=self.config.ttl,
                comment=farm_mark(site_id),
            )
        return _required(edited, f"updating the record for {record.name}")

    def _delete(self, zone_id: str, record: DnsRecord) -> int:
        """1 if deleted, 0 if it was already gone (someone else deleted it meanwhile)."""
        with translated(f"delete the {record.type} record for {record.name}"):
            try:
                self._client.dns.records.delete(record.id, zone_id=zone_id)
            except cloudflare.NotFoundError:
                return 0
        return 1


def _all_items[T](first: SyncV4PagePaginationArray[T], per_page: int) -> Iterator[T]:
    """Every item of every page.

    The SDK's own iteration asks for pages until one comes back empty; a page
    shorter than the page size is already the last, which saves a request.
    """
    page = first
    while True:
        yield from page.result
        served_per_page = (page.result_info.per_page if page.result_info else None) or per_page
        if len(page.result) < served_per_page or not page.has_next_page():
            return
        page = page.get_next_page()


def _record(sdk_record: Any) -> DnsRecord:
    # The SDK returns a union of 21 record models; they share these fields.
    return DnsRecord(
        id=sdk_record.id,
        name=sdk_record.name,
        type=sdk_record.type,
        content=sdk_record.content or "",
        proxied=bool(sdk_record.proxied),
        ttl=int(sdk_record.ttl),
        comment=getattr(sdk_record, "comment", None) or None,
    )


def _required(sdk_record: Any, doing: str) -> DnsRecord:
    if sdk_record is None:
        raise DnsError(f"Cloudflare answered {doing} without the record.", retryable=True)
    return _record(sdk_record)
