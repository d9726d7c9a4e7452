"""Bring the farm up on the Swarm at DOCKER_HOST (or the local engine); idempotent."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from farm.errors import FarmError
from nodes.bootstrap import farm_up
from nodes.inventory import sync_nodes


class Command(BaseCommand):
    help = "Create or repair the Swarm, networks, secrets and platform services; report changes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--start-engine",
            action="store_true",
            help="Start Debian's dockerd here when no engine answers.",
        )
        parser.add_argument(
            "--no-build", action="store_true", help="Do not build missing local images."
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=300,
            help="Seconds to wait for the services to be healthy.",
        )

    def handle(
        self, *args: Any, start_engine: bool, no_build: bool, wait: float, **options: Any
    ) -> None:
        def progress(message: str) -> None:
            self.stdout.write(f"  … {message}")

        try:
            report = farm_up(
                start_engine=start_engine, build=not no_build, wait_s=wait, progress=progress
            )
            sync_nodes()
        except FarmError as exc:
            raise CommandError(exc.message) from exc
        for change in report.changes:
            self.stdout.write(f"  + {change}")
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items())
        if report.no_changes:
            self.stdout.write(self.style.SUCCESS(f"Farm is up; no changes ({timings})."))
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Farm is up; {len(report.changes)} change(s) ({timings}).")
            )
