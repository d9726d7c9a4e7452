"""Compare sites with Swarm, MariaDB and the disk; print drift and orphans."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sites.reconcile import run_reconcile


class Command(BaseCommand):
    help = "Report sites that drifted from their spec and objects that belong to no site."

    def handle(self, *args: Any, **options: Any) -> None:
        report = run_reconcile()
        if report.error:
            raise CommandError(report.error)
        for finding in report.findings:
            self.stdout.write(f"{finding['kind']:7} {finding['what']}: {finding['detail']}")
        self.stdout.write(f"{report.drift} drift, {report.orphans} orphans.")
