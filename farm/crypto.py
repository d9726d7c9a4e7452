"""Secrets the panel must keep (site DB passwords, salts) are stored encrypted.

Fernet (AES-128-CBC + HMAC) with a key from FARM_ENCRYPTION_KEY. Development
and tests may leave it unset and get a key derived from SECRET_KEY with HKDF;
production refuses to start without it (farm.settings.check_production_posture),
so rotating SECRET_KEY never makes stored secrets unreadable there. A farm that
ran without it sets FARM_ENCRYPTION_KEY to ``derived_key(SECRET_KEY)`` once.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

_PREFIX = "fernet:"


def derived_key(secret_key: str) -> str:
    """The Fernet key a panel without FARM_ENCRYPTION_KEY uses (development, tests)."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"wpfarm secrets v1"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived).decode()


@cache
def _fernet(key_material: str, secret_key: str, production: bool) -> Fernet:
    if key_material:
        try:
            return Fernet(key_material.encode())
        except ValueError as exc:
            raise ImproperlyConfigured(
                "FARM_ENCRYPTION_KEY must be a Fernet key "
                "(python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')."
            ) from exc
    if production:  # settings refuse to start so; this guards a settings override
        raise ImproperlyConfigured("FARM_ENCRYPTION_KEY must be set in production.")
    return Fernet(derived_key(secret_key).encode())


def fernet() -> Fernet:
    return _fernet(settings.FARM_ENCRYPTION_KEY, settings.SECRET_KEY, settings.PRODUCTION)


def encrypt(plaintext: str) -> str:
    return _PREFIX + fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    if not token.startswith(_PREFIX):
        raise ValueError("not an encrypted value")
    try:
        return fernet().decrypt(token[len(_PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: FARM_ENCRYPTION_KEY or SECRET_KEY changed."
        ) from exc


class EncryptedTextField(models.TextField):
    """A text column whose value is encrypted at rest; Python sees plaintext."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))
