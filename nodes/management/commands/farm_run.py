"""Run the panel for development: migrate, make sure an operator exists, bring the
local farm up, then run the web server, the task queue and the node watcher together.
Ctrl-C (or SIGTERM) stops them all; if one dies, the others are stopped too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from farm.errors import FarmError
from nodes.bootstrap import farm_up
from nodes.inventory import record_engine_status, sync_nodes
from nodes.swarm_client import engine_status


class Command(BaseCommand):
    help = "Run the panel (web server + qcluster + node watcher) on the local defaults."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default=os.environ.get("FARM_PANEL_ADDR", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("FARM_PANEL_PORT", "8000"))
        )
        parser.add_argument(
            "--operator-email",
            default=os.environ.get("FARM_OPERATOR_EMAIL", "admin@farm.localhost"),
        )
        parser.add_argument(
            "--no-farm", action="store_true", help="Do not bring the local farm up."
        )
        parser.add_argument(
            "--farm-nodes",
            action="store_true",
            help="The farm is the local multi-node farm (`farm_up --nodes N`), its settings "
            "in the environment (var/farm-nodes/farm.env): check it instead of bringing "
            "the single-node farm up (scripts/run --nodes N does both).",
        )

    def handle(
        self,
        *args: Any,
        addr: str,
        port: int,
        operator_email: str,
        no_farm: bool,
        farm_nodes: bool,
        **options: Any,
    ) -> None:
        started = time.monotonic()
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        call_command("ensure_schedules", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        call_command("create_operator", operator_email, if_none_exists=True)
        if farm_nodes:
            available, why = engine_status()
            record_engine_status(available, why)
            if available:
                sync_nodes()
            self.stdout.write(
                f"Local multi-node farm: {'its managers answer' if available else why}"
            )
        elif not no_farm:
            self.bring_farm_up()
        host = "localhost" if addr in ("127.0.0.1", "0.0.0.0") else addr  # noqa: S104
        panel_url = f"http://{host}:{port}/"
        self.stdout.write(
            self.style.SUCCESS(
                f"Ready in {time.monotonic() - started:.1f} s. Panel: {panel_url} (Ctrl-C stops)"
            )
        )
        self.supervise(
            [
                [sys.executable, "manage.py", "runserver", f"{addr}:{port}", "--noreload"],
                [sys.executable, "manage.py", "qcluster"],
                [sys.executable, "manage.py", "watch_nodes"],
            ]
        )

    def bring_farm_up(self) -> None:
        """Start the engine if needed, build missing images, converge the platform.
        Without a Docker Engine the panel still runs, with a banner saying why."""
        self.stdout.write(
            "Bringing the local farm up (the first run builds the images: a few minutes)…"
        )
        started = time.monotonic()
        try:
            report = farm_up(start_engine=True, progress=lambda m: self.stdout.write(f"  … {m}"))
            sync_nodes()
        except FarmError as exc:
            record_engine_status(False, exc.message)
            self.stdout.write(
                self.style.WARNING(
                    f"The local farm is not available: {exc.message}\n"
                    "The panel runs without it; provisioning is disabled until it is."
                )
            )
            return
        record_engine_status(True)
        for change in report.changes:
            self.stdout.write(f"  + {change}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Local farm up in {time.monotonic() - started:.1f} s "
                f"({len(report.changes)} change(s)). Traefik: "
                f"http://localhost:{settings.FARM_HTTP_PORT}/ · Prometheus: "
                f"{settings.FARM_PROMETHEUS_URL}/ · MariaDB: "
                f"{settings.FARM_MARIADB_HOST}:{settings.FARM_MARIADB_PORT}"
            )
        )

    def supervise(self, commands: list[list[str]]) -> None:
        children = [
            (cmd[2], subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True))
            for cmd in commands
        ]
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        try:
            while not stopping:
                for name, child in children:
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited ({child.returncode}); stopping the rest.")
                        exit_code = child.returncode or 1
                        stopping = True
                time.sleep(0.3)
        finally:
            for _, child in children:
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            for _, child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
            self.stdout.write("Stopped the web server, the task queue and the node watcher.")
        if exit_code:
            sys.exit(exit_code)
