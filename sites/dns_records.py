"""DNS records as the farm sees them, with no network: a record, the mark that says
the farm made it for a site (``farm_mark``, in the record's Cloudflare comment), and
whose a record is (``is_ours``, ``claimed_by_others``). ``sites.dns`` is the module that reads
and writes them in Cloudflare."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sites.dns_config import RecordType

RecordAction = Literal["created", "updated", "unchanged"]
SITE_RECORD_TYPES: tuple[RecordType, ...] = ("A", "AAAA", "CNAME")
# Types that say who serves a name: the farm's own three, and a delegation (NS).
# Another party's record of one of these on a name means the name is theirs.
CLAIMING_TYPES = (*SITE_RECORD_TYPES, "NS")

# The comment on every record the farm creates. Cloudflare's free plan allows
# 100 characters of comment; this stays far below.
_MARK = re.compile(r"^wpfarm site (?P<site>[1-9][0-9]{0,18}) \(managed\)$")


def farm_mark(site_id: int) -> str:
    """The comment that marks a record as the farm's, made for one site."""
    return f"wpfarm site {site_id} (managed)"


def marked_site(comment: str | None) -> int | None:
    """The site id in a farm mark; None for any other comment (or none)."""
    match = _MARK.match(comment or "")
    return int(match["site"]) if match else None


# site id -> True when a record the farm marked for that site is a leftover the
# current site may take over (that site no longer holds the name).
LeftoverCheck = Callable[[int], bool]


def no_leftovers(site_id: int) -> bool:
    return False


@dataclass(frozen=True)
class DnsRecord:
    id: str
    name: str
    type: str
    content: str
    proxied: bool
    ttl: int
    comment: str | None = None

    @property
    def farm_site(self) -> int | None:
        """The site the farm made this record for; None: not the farm's."""
        return marked_site(self.comment)

    def describe(self) -> str:
        """For people: the type and whose it is (never the content: a proxied
        record's origin address is not for everyone to see)."""
        owner = self.farm_site
        whose = "not created by the farm" if owner is None else f"the farm made for site {owner}"
        return f"{self.type} record {whose}"


@dataclass(frozen=True)
class RecordResult:
    action: RecordAction
    record: DnsRecord
    # The farm's own records of the same name that had to go: another type, or
    # extra A/AAAA records that would send part of the traffic somewhere else.
    removed: tuple[DnsRecord, ...] = ()


def is_ours(record: DnsRecord, site_id: int | None, is_leftover: LeftoverCheck) -> bool:
    owner = record.farm_site
    if owner is None:
        return False
    return owner == site_id or is_leftover(owner)


def claimed_by_others(
    records: list[DnsRecord], site_id: int | None, is_leftover: LeftoverCheck
) -> list[DnsRecord]:
    """The records among ``records`` that say who serves the name and are not the
    farm's to change for ``site_id``."""
    return [r for r in records if r.type in CLAIMING_TYPES and not is_ours(r, site_id, is_leftover)]


def comparable(rtype: str, content: str) -> str:
    """Content as record_for_target writes it (canonical IPs, lower-case host names)."""
    if rtype in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(content))
        except ValueError:
            return content
    return content.lower().rstrip(".")
