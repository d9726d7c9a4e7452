"""Verification of a restore: the restored schema against the manifest taken at
backup time, the restored files against what the snapshot holds, and the site
through Traefik. The RTO ends when it passes."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from django.utils import timezone

from backups.models import Backup, Restore
from backups.restic import files_manifest
from farm.errors import FarmError
from farm.operations import Step, StepContext
from nodes import edge, mariadb
from sites import safe_files
from sites.steps.restore import restore_of, target_site, wants
from sites.steps.restore_files import aside_dir, manifest_path


def verify_restore(restore: Restore) -> dict[str, Any]:
    """Compare what was restored with the manifests taken at backup time, and ask
    the site through Traefik. Returns the findings; ``ok`` says whether all agree."""
    site = target_site(restore)
    report: dict[str, Any] = {"ok": True}
    if wants(restore, "db"):
        backup = Backup.objects.filter(snapshot_id=restore.db_snapshot_id).first()
        expected = (backup.manifest.get("tables") if backup else None) or {}
        actual = mariadb.schema_fingerprint(mariadb.admin_endpoint(), site.db_name)
        mismatched = sorted(
            t for t in set(expected) | set(actual) if expected.get(t) != actual.get(t)
        )
        report["database"] = {
            "tables": len(expected),
            "mismatched": mismatched,
            "manifest": bool(backup),
        }
        report["ok"] &= bool(backup) and not mismatched
    if wants(restore, "files"):
        # What the snapshot itself holds (restic's listing, written by RestoreFiles),
        # against the site directory now, walked without following a link.
        manifest: dict[str, str] = json.loads(manifest_path(restore).read_text())
        actual_files: dict[str, str] = {}
        with safe_files.sites_root() as root:
            if safe_files.kind_of(root, site.stack_name) == "dir":
                with safe_files.opened(root, site.stack_name) as fd:
                    actual_files = files_manifest(".", content=False, dir_fd=fd)
        wrong = sorted(p for p in manifest if actual_files.get(p) != manifest[p])
        extra = sorted(set(actual_files) - set(manifest))
        report["files"] = {
            "files": len(manifest),
            "mismatched": wrong[:50],
            "mismatched_count": len(wrong),
            "extra": extra[:50],
        }
        report["ok"] &= not wrong and not extra
    try:
        answer = edge.get(site.domain, "/", timeout=20)
        status, maintenance = answer.status, "Down for maintenance" in answer.text
    except edge.EdgeError as exc:
        status, maintenance = 0, False
        report["http_error"] = str(exc)
    report["http"] = {"status": status, "domain": site.domain}
    report["ok"] &= edge.answers_as_site(status) and not maintenance
    return report


class Verify(Step):
    name = "verify"
    label = "Verify: HTTP through Traefik, table rows and checksums, every file"

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        reports: list[dict[str, Any]] = []

        def probe() -> tuple[bool, str]:
            report = verify_restore(restore)
            reports.append(report)
            # Data that does not match will not match by waiting; the HTTP answer may.
            db_wrong = report.get("database", {}).get("mismatched")
            files_wrong = report.get("files", {}).get("mismatched_count")
            done = bool(report["ok"] or db_wrong or files_wrong)
            return done, f"HTTP {report.get('http', {}).get('status', 0)}"

        # Traefik may take a moment to route a preview that just started. Past the
        # deadline the last report says what failed.
        with contextlib.suppress(edge.EdgeError):
            edge.wait_for(
                probe,
                timeout_s=60,
                every_s=2,
                what="the restored site did not verify within 60 s",
                check_cancelled=ctx.check_cancelled,
            )
        report = reports[-1]
        fields: dict[str, Any] = {"verification": report, "verified": report["ok"]}
        if report["ok"]:
            # The RTO ends here: the site answers and matches its backup.
            fields["rto_seconds"] = (timezone.now() - restore.started_at).total_seconds()
        Restore.objects.filter(pk=restore.pk).update(**fields)
        ctx.log(json.dumps(report, indent=1)[:4000])
        if not report["ok"]:
            raise FarmError(
                "The restored site does not match its backup: "
                + ", ".join(
                    k
                    for k in ("database", "files", "http")
                    if k in report and not _part_ok(k, report)
                )
            )
        aside = aside_dir(target_site(restore), restore)
        with safe_files.sites_root() as root:  # verified: the previous files are not needed
            safe_files.remove(root, aside.name)


def _part_ok(part: str, report: dict[str, Any]) -> bool:
    if part == "database":
        return report["database"]["manifest"] and not report["database"]["mismatched"]
    if part == "files":
        return not report["files"]["mismatched_count"] and not report["files"]["extra"]
    return edge.answers_as_site(report["http"]["status"])
