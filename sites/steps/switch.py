"""Steps of switching a site to its verified preview (after a restore beside)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from backups.models import BackupPolicy, Restore
from farm.errors import FarmError
from farm.operations import Step, StepContext
from monitoring import prometheus
from nodes import edge
from sites import service_states, swarm_site
from sites.domains import is_local_domain
from sites.models import Site
from sites.stack import build_spec
from sites.steps.restore import restore_of


def _swap(restore: Restore, *, site_domain: str, preview_domain: str, back: bool) -> None:
    """Exchange the two sites' domains and move the backup policy along, in one
    transaction (through a placeholder: domains are unique)."""
    if restore.preview_site_id is None:
        raise FarmError("This restore has no preview site.")
    original = Site.objects.get(pk=restore.site_id)
    preview = Site.objects.get(pk=restore.preview_site_id)
    # Forward the site's domain goes to the preview; back, to the original again.
    gets_site_domain, gets_preview_domain = (original, preview) if back else (preview, original)
    with transaction.atomic():
        gets_preview_domain.domain = f"switch-{restore.pk}.invalid"
        gets_preview_domain.save(update_fields=["domain"])
        gets_site_domain.domain = site_domain
        gets_site_domain.save(update_fields=["domain"])
        gets_preview_domain.domain = preview_domain
        gets_preview_domain.save(update_fields=["domain"])
        if not BackupPolicy.objects.filter(site=gets_site_domain).exists():
            BackupPolicy.objects.filter(site=gets_preview_domain).update(site=gets_site_domain)


class SwapDomains(Step):
    name = "swap_domains"
    label = "Give the site's domain to the preview"

    def run(self, ctx: StepContext) -> None:
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
        _swap(restore, site_domain=domain, preview_domain=preview_domain, back=False)
        ctx.log(
            f"{domain} → stack {preview.stack_name}; {preview_domain} → stack {original.stack_name}"
        )

    def undo(self, ctx: StepContext) -> None:
        """Give the domain (and the backup policy) back to the original site, then
        apply and wait for both stacks again, so routes and wp-config follow.

        A roll back undoes the steps last first, so this runs after the other
        steps' (empty) undos: the stacks are re-applied here, with the domains as
        they are again, not before the swap back."""
        restore = restore_of(ctx)
        domain = ctx.state.get("site_domain")
        preview_domain = ctx.state.get("preview_domain")
        if restore.preview_site is None or domain is None or preview_domain is None:
            ctx.log("The domains were never swapped: nothing to undo.")
            return
        original = Site.objects.get(pk=restore.site_id)
        if original.domain == domain:
            ctx.log(f"{domain} is already the original site's again")
        else:
            _swap(restore, site_domain=domain, preview_domain=preview_domain, back=True)
            ctx.log(f"{domain} → stack {original.stack_name} again; {preview_domain} → the preview")
        apply_both_stacks(restore, ctx.log)
        wait_for_both(restore, ctx)


def _both(restore: Restore) -> list[Site]:
    sites = [Site.objects.get(pk=restore.site_id)]
    if restore.preview_site_id:
        sites.append(Site.objects.get(pk=restore.preview_site_id))
    return sites


def apply_both_stacks(restore: Restore, log: Callable[[str], None]) -> None:
    """Deploy both sites' stacks (routes, wp-config) as their rows say now."""
    for site in _both(restore):
        swarm_site.apply_stack(build_spec(site, db_host=swarm_site.site_db_host()), log)
        prometheus.write_site_target(
            site_id=site.pk,
            domain=site.domain,
            tenant=site.tenant.slug,
            via_edge=is_local_domain(site.domain),
        )


def wait_for_both(restore: Restore, ctx: StepContext) -> None:
    for site in _both(restore):
        swarm_site.wait_stack(
            build_spec(site, db_host=swarm_site.site_db_host()),
            log=ctx.log,
            timeout_s=settings.FARM_CONVERGE_TIMEOUT,
            check_cancelled=ctx.check_cancelled,
        )
        service_states.record_site(site.pk)


class ApplyBothStacks(Step):
    name = "apply_stacks"
    label = "Update both stacks (routes, wp-config)"

    def run(self, ctx: StepContext) -> None:
        apply_both_stacks(restore_of(ctx), ctx.log)


class ConvergeBoth(Step):
    name = "converge"
    label = "Wait for both stacks"

    def run(self, ctx: StepContext) -> None:
        wait_for_both(restore_of(ctx), ctx)


class VerifySwitched(Step):
    name = "verify"
    label = "The domain answers from the preview's stack"

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.preview_site is None:
            raise FarmError("This restore has no preview site.")
        preview = Site.objects.get(pk=restore.preview_site.pk)

        def probe() -> tuple[bool, str]:
            status = edge.get(preview.domain, "/", timeout=10).status
            return edge.answers_as_site(status), f"HTTP {status}"

        note = edge.wait_for(
            probe, timeout_s=60, what=f"{preview.domain} does not answer after the switch"
        )
        ctx.log(f"{preview.domain}: {note}")
