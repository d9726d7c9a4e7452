"""The provision steps, in the order a site is built. Each looks at the real system
first, so it can run twice; each that changes something says how to undo it."""

from __future__ import annotations

import secrets
import time

from django.conf import settings
from django.db.models import Count

from farm.errors import FarmError
from farm.operations import StepContext
from monitoring import prometheus
from nodes import edge, mariadb, proxysql
from nodes.platform import public_networks
from sites import claims, dns, files, service_states, swarm_site
from sites.domains import is_local_domain
from sites.models import LIVE_STATUSES, Site
from sites.stack import SALT_KEYS, build_spec, salts_json
from sites.steps.base import SiteStep

INSTALL_MARKERS = ("wp-core-ui", "install.php")


def choose_shard(exclude_site: int | None = None) -> str:
    """The public network shard with the most room (each holds FARM_SITES_PER_SHARD)."""
    counts = dict(
        Site.objects.filter(status__in=LIVE_STATUSES)
        .exclude(pk=exclude_site)
        .exclude(network_shard="")
        .values_list("network_shard")
        .annotate(n=Count("id"))
        .values_list("network_shard", "n")
    )
    shards = sorted(public_networks(), key=lambda name: (counts.get(name, 0), name))
    best = shards[0]
    if counts.get(best, 0) >= settings.FARM_SITES_PER_SHARD:
        raise FarmError(
            f"Every public network shard holds {settings.FARM_SITES_PER_SHARD} sites; "
            "add a shard (FARM_PUBLIC_SHARDS) and run farm_up."
        )
    return best


class Allocate(SiteStep):
    name = "allocate"
    label = "Allocate names and secrets"

    def run(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        changed = []
        if not site.db_name:
            site.db_name = site.db_user = f"wp_{site.pk}"
            changed += ["db_name", "db_user"]
        if not site.db_password:
            site.db_password = secrets.token_urlsafe(24)
            changed.append("db_password")
        if not site.wp_salts:
            site.wp_salts = salts_json({k: secrets.token_urlsafe(48) for k in SALT_KEYS})
            changed.append("wp_salts")
        if not site.network_shard:
            site.network_shard = choose_shard(exclude_site=site.pk)
            changed.append("network_shard")
        if changed:
            site.save(update_fields=changed)
        ctx.log(
            f"stack {site.stack_name}, database {site.db_name}, shard {site.network_shard}"
            f"{' (already allocated)' if not changed else ''}"
        )


class Database(SiteStep):
    name = "database"
    label = "Create the database and its user"

    def run(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        done = mariadb.ensure_site_database(
            name=site.db_name, user=site.db_user, password=site.db_password
        )
        done += proxysql.ensure_site_user(
            user=site.db_user, password=site.db_password, schema=site.db_name
        )
        ctx.log("; ".join(done) or f"{site.db_name} and its user already exist")

    def undo(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        if not site.db_name:
            ctx.log("No database was allocated.")
            return
        done = mariadb.drop_site_database(name=site.db_name, user=site.db_user)
        done += proxysql.remove_site_user(user=site.db_user)
        ctx.log("; ".join(done) or "nothing to drop")


class Files(SiteStep):
    name = "files"
    label = "Create the site directory"

    def run(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        done = files.ensure_site_files(site.pk)
        ctx.log("; ".join(done) or f"{files.site_path(site.pk)} is ready")

    def undo(self, ctx: StepContext) -> None:
        removed = files.remove_site_files(self.site(ctx).pk)
        ctx.log("removed the site directory" if removed else "no site directory")


class SwarmStack(SiteStep):
    name = "swarm"
    label = "Deploy network, secrets, config and services"

    def run(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        spec = build_spec(site, db_host=swarm_site.site_db_host())
        done = swarm_site.apply_stack(spec, ctx.log)
        if not done:
            ctx.log(f"{spec.stack} already matches its spec")

    def undo(self, ctx: StepContext) -> None:
        site_id = self.site(ctx).pk
        done = swarm_site.remove_stack(site_id, ctx.log)
        if not done:
            ctx.log("nothing of the stack was left")
        service_states.record_site(site_id)  # what the site page shows


class Converge(SiteStep):
    name = "converge"
    label = "Wait for every task to run"

    def run(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        spec = build_spec(site, db_host=swarm_site.site_db_host())
        started = time.monotonic()
        swarm_site.wait_stack(
            spec,
            log=ctx.log,
            timeout_s=settings.FARM_CONVERGE_TIMEOUT,
            check_cancelled=ctx.check_cancelled,
        )
        ctx.log(
            f"{len(spec.services)} services running and healthy after "
            f"{time.monotonic() - started:.1f} s"
        )
        service_states.record_site(site.pk)  # what the site page shows


class Dns(SiteStep):
    name = "dns"
    label = "Point DNS at the farm"

    def run(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        config = dns.dns_config_from_settings()
        if config is None:
            ctx.skip("Cloudflare is not configured")
        if dns.managed_zone_for(site.domain, config) is None:
            ctx.skip(f"{site.domain} is not in a zone the farm manages")
        with dns.CloudflareDns(config) as cloudflare:
            # Only records the farm made for this site (or its leftovers) are changed;
            # any other record on the name fails the step, not retryable (DnsNameTaken).
            result = cloudflare.upsert_record(
                site.domain, site_id=site.pk, is_leftover=claims.leftover_check(site.domain)
            )
        ctx.log(
            f"{result.action} {result.record.type} {result.record.name} → "
            f"{result.record.content} (proxied: {result.record.proxied})"
        )

    def undo(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        config = dns.dns_config_from_settings()
        if config is None or dns.managed_zone_for(site.domain, config) is None:
            ctx.log("no DNS record is managed for this domain")
            return
        with dns.CloudflareDns(config) as cloudflare:
            removed = cloudflare.delete_records(
                site.domain, site_id=site.pk, is_leftover=claims.leftover_check(site.domain)
            )
        ctx.log(f"removed {removed} DNS record(s)")


def probe_install_screen(domain: str) -> tuple[bool, str]:
    """For edge.wait_for: does the WordPress install screen answer through Traefik?"""
    answer = edge.get(domain, "/wp-admin/install.php", timeout=15)
    if answer.status == 200 and all(m in answer.text for m in INSTALL_MARKERS):
        return True, f"GET /wp-admin/install.php with Host {domain}: 200, WordPress install screen"
    return False, f"HTTP {answer.status}: {' '.join(answer.text.split())[:160]}"


class Reachable(SiteStep):
    name = "reachable"
    label = "Reach the install screen through Traefik"

    def run(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        ctx.log(
            edge.wait_for(
                lambda: probe_install_screen(site.domain),
                timeout_s=settings.FARM_REACHABLE_TIMEOUT,
                what=f"{site.domain} did not show the install screen through "
                f"Traefik within {settings.FARM_REACHABLE_TIMEOUT} s",
                check_cancelled=ctx.check_cancelled,
            )
        )


class Monitoring(SiteStep):
    name = "monitoring"
    label = "Add the site to monitoring"

    def run(self, ctx: StepContext) -> None:
        site = self.site(ctx)
        written = prometheus.write_site_target(
            site_id=site.pk,
            domain=site.domain,
            tenant=site.tenant.slug,
            via_edge=is_local_domain(site.domain),
        )
        ctx.log(f"{'wrote' if written else 'kept'} {prometheus.target_file(site.pk).name}")

    def undo(self, ctx: StepContext) -> None:
        removed = prometheus.remove_site_target(self.site(ctx).pk)
        ctx.log("removed the probe target" if removed else "no probe target")
