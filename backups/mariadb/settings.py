"""The settings of the site database backups, read from the environment.

``backups.mariadb.dump`` reads them with ``farm.env.app_setting`` (django.conf.settings
overriding); ``BackupsConfig.ready()`` imports ``backups.mariadb``, and so this module,
so a bad value stops the process at start-up."""

from __future__ import annotations

from farm.env import env_int

__all__ = ["FARM_BACKUP_LOCK_WAIT_TIMEOUT", "FARM_BACKUP_MAX_LOCK_SECONDS"]

# FLUSH TABLES WITH READ LOCK waits at most this long for running statements
# (while it waits, writes queue behind it on the whole server).
FARM_BACKUP_LOCK_WAIT_TIMEOUT = env_int("FARM_BACKUP_LOCK_WAIT_TIMEOUT", 5, minimum=1)
# The global read lock is released once the dump has its snapshot; if the dump
# has not shown that within this many seconds the backup is abandoned.
FARM_BACKUP_MAX_LOCK_SECONDS = env_int("FARM_BACKUP_MAX_LOCK_SECONDS", 10, minimum=1)
