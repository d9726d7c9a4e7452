"""Steps of switching a site to its verified preview (after a restore beside)."""

from __future__ import annotations

import time

import requests
from django.conf import settings

from backups.models import Restore
from backups.restore_steps import restore_of
from backups.verify import http_ok
from farm.errors import FarmError
from farm.operations import Step, StepContext
from sites.models import Site


class SwapDomains(Step):
    name = "swap_domains"
    label = "Give the site's domain to the preview"

    def run(self, ctx: StepContext) -> None:
        from django.db import transaction

        from backups.models import BackupPolicy

        restore = restore_of(ctx)
        original, preview = restore.site, restore.preview_site
        if preview is None or not restore.can_switch():
            raise FarmError("Only a verified preview can take the site's place.")
        domain = ctx.state.setdefault("site_domain", original.domain)
        preview_domain = ctx.state.setdefault("preview_domain", preview.domain)
        ctx.save_state()
        if preview.domain == domain:
            ctx.log("already switched")
            return
        with transaction.atomic():
            original.domain = f"switch-{restore.pk}.invalid"
            original.save(update_fields=["domain"])
            preview.domain = domain
            preview.save(update_fields=["domain"])
            original.domain = preview_domain
            original.save(update_fields=["domain"])
            BackupPolicy.objects.filter(site=original).update(site=preview)
        ctx.log(
            f"{domain} → stack {preview.stack_name}; {preview_domain} → stack {original.stack_name}"
        )


def _both(restore: Restore) -> list[Site]:
    sites = [Site.objects.get(pk=restore.site_id)]
    if restore.preview_site_id:
        sites.append(Site.objects.get(pk=restore.preview_site_id))
    return sites


class ApplyBothStacks(Step):
    name = "apply_stacks"
    label = "Update both stacks (routes, wp-config)"

    def run(self, ctx: StepContext) -> None:
        from monitoring import prometheus
        from sites.stack import build_spec
        from sites.swarm_site import apply_stack, site_db_host

        for site in _both(restore_of(ctx)):
            apply_stack(build_spec(site, db_host=site_db_host()), ctx.log)
            prometheus.write_site_target(
                site_id=site.pk, domain=site.domain, tenant=site.tenant.slug
            )


class ConvergeBoth(Step):
    name = "converge"
    label = "Wait for both stacks"

    def run(self, ctx: StepContext) -> None:
        from sites.stack import build_spec
        from sites.swarm_site import site_db_host, wait_stack

        for site in _both(restore_of(ctx)):
            wait_stack(
                build_spec(site, db_host=site_db_host()),
                log=ctx.log,
                timeout_s=settings.FARM_CONVERGE_TIMEOUT,
                check_cancelled=ctx.check_cancelled,
            )


class VerifySwitched(Step):
    name = "verify"
    label = "The domain answers from the preview's stack"

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.preview_site is None:
            raise FarmError("This restore has no preview site.")
        preview = Site.objects.get(pk=restore.preview_site.pk)
        deadline = time.monotonic() + 60
        while True:
            try:
                response = requests.get(
                    f"{settings.FARM_EDGE_URL}/",
                    headers={"Host": preview.domain},
                    timeout=10,
                    allow_redirects=False,
                )
                if http_ok(response.status_code):
                    ctx.log(f"{preview.domain}: HTTP {response.status_code}")
                    return
                last = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise FarmError(
                    f"{preview.domain} does not answer after the switch ({last}).", retryable=True
                )
            time.sleep(1)
