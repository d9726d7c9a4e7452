"""Bring the farm up on the Swarm at DOCKER_HOST (or the local engine); idempotent.

``--nodes N``: the local multi-node farm instead (nodes/local_farm.py), N engine
containers on this machine, its settings written to var/farm-nodes/farm.env;
``--with-panel`` also runs the panel on that farm as a stack (nodes/panel_stack.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from farm.errors import FarmError
from nodes import local_farm, panel_stack
from nodes.bootstrap import Report, ensure_engine, farm_up
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
            "--nodes",
            type=int,
            default=0,
            help="Bring up the local multi-node farm of N engine containers (3 managers "
            "when N >= 3) instead of the farm at DOCKER_HOST.",
        )
        parser.add_argument(
            "--heartbeat",
            type=float,
            default=None,
            help="With --nodes: the Swarm dispatcher heartbeat in seconds "
            "(default FARM_SWARM_HEARTBEAT_S, 2).",
        )
        parser.add_argument(
            "--with-panel",
            action="store_true",
            help="With --nodes: also build the panel's image and run the panel on the farm "
            "(2 web replicas behind Traefik, 2 workers, the node watcher).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=300,
            help="Seconds to wait for the services to be healthy.",
        )

    def handle(
        self,
        *args: Any,
        start_engine: bool,
        no_build: bool,
        wait: float,
        nodes: int,
        heartbeat: float | None,
        with_panel: bool,
        **options: Any,
    ) -> None:
        def progress(message: str) -> None:
            self.stdout.write(f"  … {message}")

        if with_panel and not nodes:
            raise CommandError("--with-panel needs --nodes N: the panel runs on the local farm.")
        if nodes:
            if start_engine:  # the host engine, which runs the node containers
                try:
                    ensure_engine(start_engine=True, progress=progress, report=Report())
                except FarmError as exc:
                    raise CommandError(exc.message) from exc
            self._nodes(nodes, heartbeat, wait, with_panel, progress)
            return
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

    def _nodes(
        self, n: int, heartbeat: float | None, wait: float, with_panel: bool, progress: Any
    ) -> None:
        try:
            # No sync_nodes here: this process's database is the single-node farm's panel;
            # the panel started with farm.env syncs the nodes itself.
            report = local_farm.up(
                n, heartbeat_s=heartbeat, wait_s=wait, with_panel=with_panel, progress=progress
            )
        except FarmError as exc:
            raise CommandError(exc.message) from exc
        for change in report.changes:
            self.stdout.write(f"  + {change}")
        for spec in report.specs:
            self.stdout.write(
                f"  {spec.name} {spec.address} {spec.swarm_role}: {', '.join(spec.roles)}"
            )
        if not report.encrypted:
            why = report.encryption_reason
            self.stdout.write(f"  overlay encryption off: this kernel cannot carry it ({why})")
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Local farm of {n} node(s) is up ({timings}). Its settings: "
                f"{local_farm.env_file()} (set -a; . {local_farm.env_file()}; set +a)."
            )
        )
        if with_panel:
            self.stdout.write(f"  the panel: {panel_stack.describe(report.settings)}")
