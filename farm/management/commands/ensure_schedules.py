"""Create or update the periodic tasks every farm needs (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from farm.schedules import ensure_schedules


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules (operation lease check, syncs, backups)."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, created in ensure_schedules():
            self.stdout.write(f"{'created' if created else 'up to date'}: {name}")
