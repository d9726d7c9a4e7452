"""The farm's restic repository: where it is (a local directory or S3, from the
settings), its password, and making sure it exists before the first backup."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import secrets
import time as clock
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from backups.restic.cli import Repository, run, setting
from backups.restic.errors import ResticError
from backups.restic.pipes import base_env
from farm import processes

log = logging.getLogger("backups.restic")

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_URL_SCHEME = re.compile(r"^[a-z0-9]+:")


# -- configuration ----------------------------------------------------------------


def _restic_password() -> str:
    password = str(setting("FARM_RESTIC_PASSWORD") or "")
    if password:
        return password
    if getattr(settings, "PRODUCTION", False):
        raise ImproperlyConfigured(
            "FARM_RESTIC_PASSWORD (or FARM_RESTIC_PASSWORD_FILE) must be set in production: "
            "without it the backups cannot be read."
        )
    # Development and tests: one password per checkout, kept with the other secrets.
    secrets_dir = Path(settings.FARM_SECRETS_DIR)
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = secrets_dir / "restic-password"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def repository_from_settings() -> Repository:
    """The farm's repository: S3 when endpoint and bucket are set, else a local directory."""
    var_dir = Path(getattr(settings, "VAR_DIR", Path(settings.BASE_DIR) / "var"))
    cache = Path(setting("FARM_RESTIC_CACHE_DIR") or var_dir / "cache" / "restic")
    endpoint = str(setting("FARM_BACKUP_S3_ENDPOINT") or "").rstrip("/")
    bucket = str(setting("FARM_BACKUP_S3_BUCKET") or "")
    if not (endpoint or bucket):
        location = str(setting("FARM_BACKUP_REPOSITORY") or var_dir / "restic-repo")
        if not _URL_SCHEME.match(location):
            location = str(Path(location).absolute())
        return Repository(location, _restic_password(), {}, cache)
    if not (endpoint and bucket):
        raise ImproperlyConfigured(
            "FARM_BACKUP_S3_ENDPOINT and FARM_BACKUP_S3_BUCKET must be set together."
        )
    if not endpoint.startswith(("https://", "http://")):
        raise ImproperlyConfigured(
            f"FARM_BACKUP_S3_ENDPOINT={endpoint!r} must start with https:// (or http://)."
        )
    if not _BUCKET.match(bucket):
        raise ImproperlyConfigured(f"FARM_BACKUP_S3_BUCKET={bucket!r} is not a bucket name.")
    key = str(setting("FARM_BACKUP_S3_ACCESS_KEY_ID") or "")
    secret = str(setting("FARM_BACKUP_S3_SECRET_ACCESS_KEY") or "")
    if not (key and secret):
        raise ImproperlyConfigured(
            "FARM_BACKUP_S3_ACCESS_KEY_ID and FARM_BACKUP_S3_SECRET_ACCESS_KEY (or their _FILE "
            "variants) must be set with FARM_BACKUP_S3_ENDPOINT."
        )
    prefix = str(setting("FARM_BACKUP_S3_PREFIX") or "").strip("/")
    url = f"s3:{endpoint}/{bucket}" + (f"/{prefix}" if prefix else "")
    keys = {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": str(setting("FARM_BACKUP_S3_REGION") or "us-east-1"),
    }
    return Repository(url, _restic_password(), keys, cache)


# -- repository -------------------------------------------------------------------


@functools.cache
def restic_version() -> str:
    out = processes.run(
        ["restic", "version"], capture_output=True, text=True, env=base_env(), check=True
    ).stdout
    match = re.search(r"restic ([0-9][^ ]*)", out)
    return match.group(1) if match else out.strip()


def s3_location(url: str) -> tuple[str, str]:
    """``s3:http://host:port/bucket/prefix`` -> (``http://host:port``, ``bucket``)."""
    rest = url.removeprefix("s3:")
    if not rest.startswith(("http://", "https://")):
        rest = "https://" + rest
    scheme, _, remainder = rest.partition("://")
    netloc, _, path = remainder.partition("/")
    return f"{scheme}://{netloc}", path.strip("/").split("/")[0]


# Repositories seen to exist (and to open with their password) lately: every backup
# starts with ensure_repository, and asking restic again each time costs ~0.3 s.
_KNOWN_FOR_SECONDS = 300.0
_known: dict[tuple[str, str], float] = {}


def _key(repo: Repository) -> tuple[str, str]:
    return repo.url, hashlib.sha256(repo.password.encode()).hexdigest()


def ensure_repository(repo: Repository) -> bool:
    """Create the bucket (S3) and the repository unless they exist; True when it created one."""
    seen = _known.get(_key(repo))
    if seen is not None and clock.monotonic() - seen < _KNOWN_FOR_SECONDS:
        return False
    created = _ensure_repository(repo)
    _known[_key(repo)] = clock.monotonic()
    return created


def _ensure_repository(repo: Repository) -> bool:
    if repo.is_s3:
        # Loaded only by a farm that backs up to S3: boto3 costs every process ~0.2 s
        # and ~24 MB, and a local repository never needs it.
        from backups.restic import s3

        endpoint, bucket = s3_location(repo.url)
        s3.ensure_bucket(
            endpoint,
            bucket,
            repo.env.get("AWS_DEFAULT_REGION", "us-east-1"),
            repo.env.get("AWS_ACCESS_KEY_ID", ""),
            repo.env.get("AWS_SECRET_ACCESS_KEY", ""),
        )
    elif not _URL_SCHEME.match(repo.url) or repo.url.startswith("local:"):
        Path(repo.url.removeprefix("local:")).parent.mkdir(parents=True, exist_ok=True)
    try:
        run(repo, ["cat", "config"])
        return False
    except ResticError as exc:
        if exc.kind != "not_initialised":
            raise
    try:
        run(repo, ["init"])
    except ResticError as exc:
        if re.search(r"already (?:exists|initialized)", exc.message):
            return False  # another worker created it a moment ago
        raise
    log.info("created restic repository %s", repo.url)
    return True
