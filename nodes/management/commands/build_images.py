"""Build the farm's images offline from Debian packages (no registry); a no-op when present."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from nodes.images import ImageBuildError, build_images
from nodes.swarm import SwarmError, client


class Command(BaseCommand):
    help = "Build every local farm image that is missing (tags are content hashes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "roles",
            nargs="*",
            help="Only these roles (default: every core role; node only when named).",
        )
        parser.add_argument("--force", action="store_true", help="Rebuild even when present.")

    def handle(self, *args: Any, roles: list[str], force: bool, **options: Any) -> None:
        try:
            report = build_images(
                client(),
                cache_dir=settings.FARM_IMAGE_CACHE_DIR,
                progress=lambda m: self.stdout.write(f"  … {m}"),
                roles=roles or None,
                force=force,
            )
        except (ImageBuildError, SwarmError) as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(report.summary())
