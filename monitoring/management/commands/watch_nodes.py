"""Watch the Swarm's nodes (nodes/watch.py): a node that goes down starts its failover
operation; one that is ready again has its NodeDown alert resolved. Runs until stopped
(``farm_run`` runs it beside the web server and the task queue)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from monitoring.node_alerts import resolve_node_down
from nodes.models import Node
from nodes.swarm import SwarmError
from nodes.watch import NodeWatcher


class Command(BaseCommand):
    help = "Watch the Swarm's nodes: fail over a node that goes down, resolve its alert."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Look once, then stop.")

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        watcher = NodeWatcher(on_ready=self.recovered)
        interval = settings.FARM_NODE_WATCH_INTERVAL
        if not once:
            self.stdout.write(f"Watching the Swarm's nodes every {interval:g} s.")
        last_error = ""
        try:
            while True:
                try:
                    for change in watcher.poll():
                        self.stdout.write(f"{change.hostname}: {change.before} → {change.after}")
                    last_error = ""
                except SwarmError as exc:
                    # No manager answers (yet): keep watching, the Swarm may come back;
                    # said once, not every few seconds.
                    if exc.message != last_error:
                        self.stderr.write(f"Cannot ask the Swarm: {exc.message}")
                    last_error = exc.message
                if once:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            return

    def recovered(self, node: Node) -> None:
        if resolve_node_down(node):
            self.stdout.write(f"{node.hostname} is ready again: NodeDown resolved.")
