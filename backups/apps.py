from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class BackupsConfig(AppConfig):
    name = "backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # restic and mariadb: importing them here makes a bad setting of theirs stop
        # the start-up, and registers the cluster backup kind (backups.mariadb).
        from backups import mariadb, restic  # noqa: F401

        name, _ = restic.LONGEST_SUBPROCESS_TIMEOUT
        check_queue_outlasts(name, int(restic.setting(name)))


def check_queue_outlasts(name: str, seconds: int) -> None:
    """The task queue's timeout (FARM_Q_TIMEOUT) must be longer than the longest one
    command of a step may run (``name``, a restic restore): were it shorter, the worker
    would be killed inside that step at every delivery, and the operation re-queued
    until FARM_OPERATION_MAX_ATTEMPTS fails it."""
    timeout = int(settings.Q_TIMEOUT)
    if seconds >= timeout:
        raise ImproperlyConfigured(
            f"FARM_Q_TIMEOUT ({timeout}) must be larger than {name} ({seconds}), the "
            "longest one command of a step may run; otherwise the worker is killed inside "
            f"that step every time. Raise FARM_Q_TIMEOUT (and FARM_Q_RETRY) or lower {name}."
        )
