"""Prepare a datadir from a cluster snapshot (whole-cluster recovery runbook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backups.mariadb import restore_cluster
from farm.errors import FarmError


class Command(BaseCommand):
    help = (
        "Unpack a cluster (mariabackup) snapshot into a new directory and prepare it; "
        "then stop MariaDB, replace its datadir with it, and start MariaDB again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("snapshot")
        parser.add_argument("--target-dir", required=True, type=Path)

    def handle(self, *args: Any, snapshot: str, target_dir: Path, **options: Any) -> None:
        try:
            path = restore_cluster(snapshot, target_dir, lambda m: self.stdout.write(m))
        except FarmError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Ready: {path}"))
