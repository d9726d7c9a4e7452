from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from farm.errors import FarmError
from nodes.inventory import sync_nodes


class Command(BaseCommand):
    help = "Update the Node inventory from the Swarm API."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.stdout.write(str(sync_nodes()))
        except FarmError as exc:
            raise CommandError(exc.message) from exc
