"""The preview site of a restore beside: its unguessable name, its row, and its removal
at the end of a drill. The provision steps that build it are the usual ones
(``sites.operations.restores.PREVIEW_STEPS``)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction

from backups.models import Restore, RestoreTarget
from farm.errors import FarmError
from farm.operations import Step, StepContext
from nodes import mariadb, proxysql
from sites import files, swarm_site
from sites.models import Site, SiteStatus
from sites.steps.restore import restore_of

PREVIEW_PREFIX = "restore-"


def preview_domain(site: Site) -> str:
    """``restore-<site id>-<16 random hex>.<FARM_PREVIEW_DOMAIN>``: never the same twice,
    never guessable, so nobody can take a preview's name before it exists."""
    label = f"{PREVIEW_PREFIX}{site.pk}-{secrets.token_hex(8)}"
    return f"{label}.{settings.FARM_PREVIEW_DOMAIN}"


def create_preview_site(restore: Restore) -> Site:
    """The preview site of a restore beside, counted as a live site of the tenant from
    now on (quota and capacity were checked by the caller, holding the tenant's lock)."""
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return Site.objects.create(
                    tenant=restore.site.tenant,
                    domain=preview_domain(restore.site),
                    status=SiteStatus.RESTORING,
                    image_choice=restore.site.image_choice,
                    cache_enabled=restore.site.cache_enabled,
                    created_by=restore.requested_by,
                )
        except IntegrityError:
            continue  # the name is taken (claimed by hand, or drawn twice): draw another
    raise FarmError("No free name for the preview site was found; try again.", retryable=True)


def abandon_preview(restore: Restore, why: str) -> None:
    """A restore beside that failed or was cancelled: its preview is marked failed, so
    that the panel can delete it like any failed site (instead of leaving it
    Restoring for good); a failed one is then removed by rolling its steps back."""
    if restore.target != RestoreTarget.BESIDE or restore.preview_site_id is None:
        return
    Site.objects.filter(pk=restore.preview_site_id, status=SiteStatus.RESTORING).update(
        status=SiteStatus.FAILED, last_error=f"Restore #{restore.pk} did not finish: {why}"
    )


class PreviewSite(Step):
    name = "preview_site"
    label = "Create the preview site"

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.target != RestoreTarget.BESIDE:
            ctx.skip("restoring in place")
        preview = restore.preview_site
        if preview is not None and preview.status != SiteStatus.DELETED:
            ctx.log(f"preview {preview.domain} (stack {preview.stack_name})")
            return
        # Restores started before previews were made with the restore itself.
        preview = create_preview_site(restore)
        restore.preview_site = preview
        restore.save(update_fields=["preview_site"])
        ctx.log(f"preview site {preview.domain} (stack {preview.stack_name})")

    def undo(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.preview_site is not None:
            Site.objects.filter(pk=restore.preview_site.pk).update(
                status=SiteStatus.DELETED, domain_claim=None
            )
            ctx.log(f"preview site {restore.preview_site.domain} marked deleted")


class RemovePreview(Step):
    """Drills end by removing the preview they made."""

    name = "remove_preview"
    label = "Remove the preview site"

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        preview = restore.preview_site
        if preview is None:
            ctx.skip("there is no preview")
        swarm_site.remove_stack(preview.pk, ctx.log)
        if preview.db_name:
            mariadb.drop_site_database(name=preview.db_name, user=preview.db_user)
            proxysql.remove_site_user(user=preview.db_user)
        files.remove_site_files(preview.pk)
        preview.status = SiteStatus.DELETED
        preview.save(update_fields=["status"])
        ctx.log(f"removed {preview.domain}")
