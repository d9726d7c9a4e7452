"""Who may claim which domain: the one place the rules are written.

Both the New site form (a field error) and ``sites.services.create_site`` (a
FarmError) call ``check_domain_claim``, so a rule cannot be in one and not the
other. In order:

1. A live site already holds the name: refused (``taken``).
2. The panel's own host (``SITE_URL``, ``ALLOWED_HOSTS``) and restore previews
   (``restore-*`` under ``FARM_PREVIEW_DOMAIN``): refused for everyone; the
   restore creates its previews itself.
3. Tenants only (an operator's own request is its own approval):
   - inside a managed zone (``CLOUDFLARE_ZONES``): not the zone apex, and not a
     reserved first label (``FARM_RESERVED_LABELS``: www, mail, mx, ...);
   - not a name under or above another tenant's live site (a parent could set
     cookies for it, a child could set them for the parent);
   - outside the managed zones, and not ``*.localhost``: allowed, but the site
     waits for an operator's approval before anything is provisioned
     (``NEEDS_APPROVAL``): the farm cannot tell whether the tenant owns it.
4. With Cloudflare configured, a managed-zone name that already has records the
   farm did not create (or made for a site still holding the name) is refused
   for everyone: the farm never overwrites them. The provision's DNS step checks
   again (a record may appear in between) and fails, not retryable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

from farm.models import User
from farm.models.tenancy import can_change_tenant
from sites import dns, dns_config
from sites.dns_errors import DnsError, DnsNameTaken
from sites.domains import is_local_domain, normalise_domain
from sites.models import LIVE_STATUSES, Site

logger = logging.getLogger(__name__)

PREVIEW_PREFIX = "restore-"


class ClaimOutcome(StrEnum):
    ALLOWED = "allowed"
    NEEDS_APPROVAL = "needs_approval"
    REFUSED = "refused"


@dataclass(frozen=True)
class ClaimDecision:
    domain: str  # normalised
    outcome: ClaimOutcome
    reason: str = ""  # for people: why it is refused, or why the site will wait
    code: str = ""  # machine-readable: taken, panel_host, preview, apex, reserved, ...

    @property
    def refused(self) -> bool:
        return self.outcome == ClaimOutcome.REFUSED

    @property
    def needs_approval(self) -> bool:
        return self.outcome == ClaimOutcome.NEEDS_APPROVAL


def _allowed(domain: str) -> ClaimDecision:
    return ClaimDecision(domain, ClaimOutcome.ALLOWED)


def _refused(domain: str, code: str, reason: str) -> ClaimDecision:
    return ClaimDecision(domain, ClaimOutcome.REFUSED, reason, code)


def check_domain_claim(domain: str, *, actor: User) -> ClaimDecision:
    """May ``actor`` create a site for ``domain``, and does it need approval first?

    ``domain`` is normalised here (a malformed one raises ValidationError). With
    Cloudflare configured this reads the zone (one request); if Cloudflare cannot
    be asked, the claim is not refused for it: the DNS step checks again.
    """
    domain = normalise_domain(domain)
    is_operator = bool(actor.is_staff)
    if Site.objects.filter(domain_claim=domain).exists():
        return _refused(domain, "taken", f"{domain} is already a site on this farm.")
    if domain in panel_hosts():
        return _refused(
            domain, "panel_host", f"{domain} is the panel's own address; it cannot be a site."
        )
    if is_preview_name(domain):
        return _refused(
            domain,
            "preview",
            f"{domain} looks like a restore preview (restore-… under "
            f"{settings.FARM_PREVIEW_DOMAIN}); those names are made by restores only.",
        )
    zone = dns.zone_containing(domain, dns.managed_zones_from_settings())
    if not is_operator:
        refusal = _tenant_refusal(domain, zone, actor)
        if refusal is not None:
            return refusal
    if zone is not None:
        refusal = _dns_refusal(domain)
        if refusal is not None:
            return refusal
        return _allowed(domain)
    if is_local_domain(domain) or is_operator:
        return _allowed(domain)
    return ClaimDecision(
        domain,
        ClaimOutcome.NEEDS_APPROVAL,
        f"{domain} is not in a zone the farm manages, so the farm cannot tell who owns "
        "it: an operator must approve it before the site is set up.",
        "outside_zones",
    )


def _tenant_refusal(domain: str, zone: str | None, actor: User) -> ClaimDecision | None:
    if zone is not None and domain == zone:
        return _refused(
            domain,
            "apex",
            f"{domain} is the apex of the farm's zone {zone}; only an operator can give it "
            "to a site.",
        )
    if zone is not None:
        first = domain.split(".", 1)[0]
        if first in reserved_labels():
            return _refused(
                domain,
                "reserved",
                f"“{first}” names are reserved in {zone} (mail, name servers and the like "
                "belong to the zone's owner); ask an operator, or choose another name.",
            )
    neighbour = _other_tenants_neighbour(domain, actor)
    if neighbour is not None:
        return _refused(
            domain,
            "nested",
            f"{domain} is {'under' if domain.endswith('.' + neighbour) else 'above'} "
            f"{neighbour}, a site of another tenant; names inside another tenant's site "
            "(or around it) are for operators to give.",
        )
    return None


def _other_tenants_neighbour(domain: str, actor: User) -> str | None:
    """A live site of a tenant ``actor`` cannot change whose name is a parent or a
    child of ``domain``: the two could set each other's cookies."""
    labels = domain.split(".")
    parents = [".".join(labels[i:]) for i in range(1, len(labels) - 1)]
    nearby = Site.objects.filter(status__in=LIVE_STATUSES).filter(
        domain_claim__in=parents
    ) | Site.objects.filter(status__in=LIVE_STATUSES, domain_claim__endswith="." + domain)
    for site_domain, tenant_id in nearby.values_list("domain", "tenant_id"):
        if not can_change_tenant(actor, tenant_id):
            return str(site_domain)
    return None


def _dns_refusal(domain: str) -> ClaimDecision | None:
    try:
        config = dns.dns_config_from_settings()
    except ImproperlyConfigured:  # the DNS step reports it, in its own words
        logger.exception("Cloudflare settings are incomplete; %s not checked", domain)
        return None
    if config is None:
        return None
    try:
        with dns.CloudflareDns(config) as cloudflare:
            cloudflare.check_name_free(domain, is_leftover=leftover_check(domain))
    except DnsNameTaken as exc:
        return _refused(domain, "dns_taken", exc.message)
    except DnsError as exc:
        logger.warning("Could not check Cloudflare for %s (%s); the DNS step will", domain, exc)
    return None


def leftover_check(domain: str) -> dns.LeftoverCheck:
    """For the farm's own records of ``domain``: True when the site a record was made
    for no longer holds the name (deleted; or switched away by a restore), so the
    site that holds it now may take the record over. A site id this panel does not
    know is never a leftover."""

    def is_leftover(site_id: int) -> bool:
        return Site.objects.filter(pk=site_id).exclude(domain_claim=domain).exists()

    return is_leftover


def panel_hosts() -> frozenset[str]:
    """The panel's own host names, from SITE_URL and ALLOWED_HOSTS (normalised)."""
    raw = [urlsplit(getattr(settings, "SITE_URL", "")).hostname or ""]
    raw += [host.lstrip(".") for host in getattr(settings, "ALLOWED_HOSTS", []) if host != "*"]
    hosts = set()
    for host in raw:
        try:
            hosts.add(normalise_domain(host))
        except ValidationError:
            hosts.add(host.lower().rstrip("."))  # localhost, an address: compared as given
    return frozenset(h for h in hosts if h)


def is_preview_name(domain: str) -> bool:
    """``restore-…`` directly or deeper under FARM_PREVIEW_DOMAIN: a restore's preview."""
    preview_domain = str(getattr(settings, "FARM_PREVIEW_DOMAIN", "localhost")).lower()
    preview_domain = preview_domain.strip(".")
    return domain.startswith(PREVIEW_PREFIX) and domain.endswith("." + preview_domain)


def reserved_labels() -> frozenset[str]:
    return frozenset(label.strip().lower() for label in dns_config.setting("FARM_RESERVED_LABELS"))
