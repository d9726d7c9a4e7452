"""Remove everything the farm made on the Swarm (platform and site stacks)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from farm.errors import FarmError
from nodes import local_farm, swarm_reset
from nodes.bootstrap import farm_down


class Command(BaseCommand):
    help = "Remove the farm's services, networks, secrets, configs, volumes and node labels."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--purge-data",
            action="store_true",
            help="Also delete the MariaDB datadir, Prometheus targets and site files.",
        )
        parser.add_argument(
            "--nodes",
            action="store_true",
            help="Remove the local multi-node farm's engine containers and their network "
            "instead (their volumes stay unless --purge-data).",
        )
        parser.add_argument(
            "--reset-engine",
            action="store_true",
            help=(
                "Then leave the engine clean: remove every service and network (the farm's "
                "or not), leave the swarm, delete the VXLAN interfaces an earlier "
                "`swarm leave --force` left behind, and start a new swarm."
            ),
        )

    def handle(
        self, *args: Any, purge_data: bool, reset_engine: bool, nodes: bool, **options: Any
    ) -> None:
        def progress(message: str) -> None:
            self.stdout.write(f"  … {message}")

        if nodes:
            try:
                removed = local_farm.down(purge=purge_data, progress=lambda m: None)
            except FarmError as exc:
                raise CommandError(exc.message) from exc
            for change in removed:
                self.stdout.write(f"  - {change}")
            self.stdout.write(self.style.SUCCESS(f"Local farm is down ({len(removed)} changes)."))
            return
        try:
            report = farm_down(purge_data=purge_data, progress=progress)
            changes = list(report.changes)
            if reset_engine:
                changes += swarm_reset.reset_engine(progress=progress)
        except FarmError as exc:
            raise CommandError(exc.message) from exc
        for change in changes:
            self.stdout.write(f"  - {change}")
        self.stdout.write(self.style.SUCCESS(f"Farm is down ({len(changes)} changes)."))
