"""The restic repository's settings, read from the environment (``backups.restic.setting``
reads them, django.conf.settings overriding; ``BackupsConfig.ready()`` imports
``backups.restic``, and so this module, so a bad value stops the process at start-up).

Without S3 settings the restic repository is a local directory
(``<FARM_VAR_DIR>/restic-repo`` unless ``FARM_BACKUP_REPOSITORY`` says
otherwise). With ``FARM_BACKUP_S3_ENDPOINT`` and ``FARM_BACKUP_S3_BUCKET`` it is
an S3-compatible bucket (DigitalOcean Spaces, MinIO...).
``backups.restic.repository_from_settings`` checks that what is set is complete.
Secrets have ``*_FILE`` variants (Swarm secrets).
"""

from __future__ import annotations

from farm.env import env_int, env_str

__all__ = [
    "FARM_BACKUP_REPOSITORY",
    "FARM_BACKUP_S3_ACCESS_KEY_ID",
    "FARM_BACKUP_S3_BUCKET",
    "FARM_BACKUP_S3_ENDPOINT",
    "FARM_BACKUP_S3_PREFIX",
    "FARM_BACKUP_S3_REGION",
    "FARM_BACKUP_S3_SECRET_ACCESS_KEY",
    "FARM_RESTIC_CACHE_DIR",
    "FARM_RESTIC_PASSWORD",
    "FARM_RESTIC_TIMEOUT",
]

# A local path or any restic repository URL; empty means <FARM_VAR_DIR>/restic-repo.
FARM_BACKUP_REPOSITORY = env_str("FARM_BACKUP_REPOSITORY")
# S3-compatible storage: "https://<region>.<provider host>" (scheme required).
FARM_BACKUP_S3_ENDPOINT = env_str("FARM_BACKUP_S3_ENDPOINT")
FARM_BACKUP_S3_BUCKET = env_str("FARM_BACKUP_S3_BUCKET")
FARM_BACKUP_S3_REGION = env_str("FARM_BACKUP_S3_REGION", "us-east-1")
FARM_BACKUP_S3_ACCESS_KEY_ID = env_str("FARM_BACKUP_S3_ACCESS_KEY_ID")
FARM_BACKUP_S3_SECRET_ACCESS_KEY = env_str("FARM_BACKUP_S3_SECRET_ACCESS_KEY")
FARM_BACKUP_S3_PREFIX = env_str("FARM_BACKUP_S3_PREFIX", "restic")
# Empty: outside production a password is generated once into
# <FARM_SECRETS_DIR>/restic-password; in production it must be set.
FARM_RESTIC_PASSWORD = env_str("FARM_RESTIC_PASSWORD")
# Empty: <FARM_VAR_DIR>/cache/restic.
FARM_RESTIC_CACHE_DIR = env_str("FARM_RESTIC_CACHE_DIR")
# Upper bound for one restic command other than a streamed backup (seconds).
FARM_RESTIC_TIMEOUT = env_int("FARM_RESTIC_TIMEOUT", 6 * 3600, minimum=10)
# The longest one subprocess of a step may run, by the setting that says so: the
# task queue's FARM_Q_TIMEOUT must be larger (BackupsConfig.ready() refuses otherwise).
LONGEST_SUBPROCESS_TIMEOUT = ("FARM_RESTIC_TIMEOUT", FARM_RESTIC_TIMEOUT)
