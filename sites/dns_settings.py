"""Cloudflare DNS and domain-claim settings, read from the environment
(``sites.dns_config.setting`` reads them, django.conf.settings overriding;
``SitesConfig.ready()`` imports this module so a bad value stops the start-up).

DNS is optional: without ``CLOUDFLARE_API_TOKEN`` (or ``CLOUDFLARE_API_TOKEN_FILE``,
a Swarm secret) the provision step skips DNS. ``sites.dns.dns_config_from_settings``
checks that the rest is complete when a token is set. Which names a tenant may
claim is decided in ``sites.claims`` from these settings.
"""

from __future__ import annotations

from farm.env import env_bool, env_int, env_list, env_str

__all__ = [
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_BASE_URL",
    "CLOUDFLARE_PROXIED",
    "CLOUDFLARE_RECORD_TARGET",
    "CLOUDFLARE_RECORD_TTL",
    "CLOUDFLARE_ZONES",
    "FARM_RESERVED_LABELS",
]

CLOUDFLARE_API_TOKEN = env_str("CLOUDFLARE_API_TOKEN")
# Zone names the farm manages, comma separated: "example.com,example.org".
CLOUDFLARE_ZONES = env_list("CLOUDFLARE_ZONES", [])
# What site records point at: the floating IP (A/AAAA) or a host name (CNAME).
CLOUDFLARE_RECORD_TARGET = env_str("CLOUDFLARE_RECORD_TARGET")
CLOUDFLARE_PROXIED = env_bool("CLOUDFLARE_PROXIED", True)
# 1 means "automatic" to Cloudflare; proxied records are always automatic.
CLOUDFLARE_RECORD_TTL = env_int("CLOUDFLARE_RECORD_TTL", 1, minimum=1)
# Empty: the SDK's default API address. Tests point this at a local fake.
CLOUDFLARE_BASE_URL = env_str("CLOUDFLARE_BASE_URL")

# First labels of a name in a managed zone that tenants may not take (operators
# may): mail, name servers, autodiscovery and the like belong to the zone's owner.
FARM_RESERVED_LABELS = [
    label.lower()
    for label in env_list(
        "FARM_RESERVED_LABELS",
        [
            "www",
            "mail",
            "email",
            "mx",
            "smtp",
            "imap",
            "pop",
            "pop3",
            "ftp",
            "sftp",
            "ns",
            "ns1",
            "ns2",
            "ns3",
            "ns4",
            "dns",
            "autodiscover",
            "autoconfig",
            "wpad",
            "isatap",
            "cpanel",
            "whm",
            "webmail",
            "admin",
            "_dmarc",
            "_domainkey",
            "_acme-challenge",
        ],
    )
]
