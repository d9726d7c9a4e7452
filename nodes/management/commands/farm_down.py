"""Remove everything the farm made on the Swarm (platform and site stacks)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from farm.errors import FarmError
from nodes.bootstrap import farm_down


class Command(BaseCommand):
    help = "Remove the farm's services, networks, secrets, configs, volumes and node labels."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--purge-data",
            action="store_true",
            help="Also delete the MariaDB datadir, Prometheus targets and site files.",
        )

    def handle(self, *args: Any, purge_data: bool, **options: Any) -> None:
        try:
            report = farm_down(
                purge_data=purge_data, progress=lambda m: self.stdout.write(f"  … {m}")
            )
        except FarmError as exc:
            raise CommandError(exc.message) from exc
        for change in report.changes:
            self.stdout.write(f"  - {change}")
        self.stdout.write(self.style.SUCCESS(f"Farm is down ({len(report.changes)} removals)."))
