"""Create (or promote) an operator account and print how to log in."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from farm.models import User


class Command(BaseCommand):
    help = "Create an operator (staff superuser), or promote an existing user to operator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument(
            "--password",
            help="Set this password (default: generate one and print it once).",
        )
        parser.add_argument(
            "--if-none-exists",
            action="store_true",
            help="Do nothing when any operator already exists (used by the run command).",
        )

    def handle(
        self, *args: Any, email: str, password: str | None, if_none_exists: bool, **options: Any
    ) -> None:
        email = email.strip().lower()
        try:
            validate_email(email)
        except Exception as exc:
            raise CommandError(f"{email!r} is not an email address.") from exc
        if if_none_exists and User.objects.filter(is_staff=True, is_active=True).exists():
            self.stdout.write("An operator account already exists; not creating another.")
            return
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        with transaction.atomic():
            user, created = User.objects.get_or_create(email=email)
            user.is_staff = True
            user.is_superuser = True
            user.is_active = True
            user.set_password(password)
            user.save()
        verb = "Created" if created else "Promoted"
        self.stdout.write(self.style.SUCCESS(f"{verb} operator {email}."))
        if generated:
            self.stdout.write(f"  Log in with: {email} / {password}")
            self.stdout.write("  (shown once; change it under Account → Change password)")
