"""Previews of restores that failed before this release stayed Restoring for good,
which the panel cannot delete: mark them failed, as a failed restore does now."""

from django.db import migrations


def mark_stuck_previews_failed(apps, schema_editor):
    Restore = apps.get_model("backups", "Restore")
    Site = apps.get_model("sites", "Site")
    stuck = Restore.objects.filter(
        target="beside", status="failed", preview_site__status="restoring"
    ).values_list("preview_site_id", "pk")
    for preview_id, restore_id in stuck:
        Site.objects.filter(pk=preview_id, status="restoring").update(
            status="failed", last_error=f"Restore #{restore_id} did not finish."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0005_policy_help_text"),
        ("sites", "0003_reconcile_report"),
    ]

    operations = [migrations.RunPython(mark_stuck_previews_failed, migrations.RunPython.noop)]
