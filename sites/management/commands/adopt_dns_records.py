"""Mark the DNS records a farm made before it marked them (issue 9, item 2).

The farm changes and deletes only records carrying its comment mark. Records it
created before the marks existed look foreign, so Repair would refuse those
sites' names. This lists, for every live site in a managed zone, the unmarked
records that point exactly at the farm's edge, and with ``--apply`` marks them.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sites import dns
from sites.models import Site


class Command(BaseCommand):
    help = "Mark unmarked DNS records of live sites that point at the farm's edge."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--apply", action="store_true", help="Mark them (without it: only list them)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = dns.dns_config_from_settings()
        if config is None:
            raise CommandError("Cloudflare is not configured (CLOUDFLARE_API_TOKEN).")
        apply = bool(options["apply"])
        found = 0
        with dns.CloudflareDns(config) as cloudflare:
            for site in Site.objects.live().order_by("pk"):
                if dns.managed_zone_for(site.domain, config) is None:
                    continue
                try:
                    records = cloudflare.adopt_unmarked(site.domain, site_id=site.pk, apply=apply)
                except dns.DnsError as exc:
                    raise CommandError(f"{site.domain}: {exc.message}") from exc
                for record in records:
                    found += 1
                    verb = "marked" if apply else "would mark"
                    self.stdout.write(f"{verb} {record.type} {record.name} for site {site.pk}")
        if not apply and found:
            self.stdout.write(f"{found} record(s); run again with --apply to mark them.")
        elif not found:
            self.stdout.write("No unmarked record of a live site points at the farm.")
