"""The task queue (django-q2) and the Operation engine's settings: part of
farm/settings.py (imported there), read from the environment like the rest.

The ORM broker re-delivers a task whose receipt was not acknowledged within
`retry` seconds. `retry` must therefore be larger than `timeout` (the longest a
worker may spend on one task before the cluster kills it): were it shorter, a
healthy but slow operation would be handed to a second worker while the
first still runs it. Operations are claimed atomically, so a second delivery
is harmless, but it would be wasted work. A worker killed outright (SIGKILL,
OOM, a node lost) is noticed sooner than `retry` by the operation lease
(FARM_OPERATION_LEASE_SECONDS): a minute-by-minute task re-enqueues
operations whose heartbeat has stopped.

`timeout` must also be longer than the longest single command a step may run
(a restic restore: FARM_RESTIC_TIMEOUT, 6 h by default): were it shorter, the
worker would be killed inside that step at every delivery, and the operation
re-queued until FARM_OPERATION_MAX_ATTEMPTS fails it. The default leaves an hour
beyond it; the app that runs the command checks it (``BackupsConfig.ready()``).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from farm.env import env_choice, env_int, env_list, env_str

__all__ = [
    "FARM_OPERATION_HEARTBEAT_SECONDS",
    "FARM_OPERATION_LEASE_SECONDS",
    "FARM_OPERATION_MAX_ATTEMPTS",
    "FARM_OPERATION_MODULES",
    "FARM_QUEUE",
    "Q_CLUSTER",
    "Q_RETRY",
    "Q_TIMEOUT",
    "REDIS_URL",
]

FARM_QUEUE = env_choice("FARM_QUEUE", "orm", ("orm", "redis"))
Q_TIMEOUT = env_int("FARM_Q_TIMEOUT", 7 * 3600, minimum=1)
Q_RETRY = env_int("FARM_Q_RETRY", Q_TIMEOUT + 300, minimum=2)
if Q_RETRY <= Q_TIMEOUT:
    raise ImproperlyConfigured(
        f"FARM_Q_RETRY ({Q_RETRY}) must be larger than FARM_Q_TIMEOUT ({Q_TIMEOUT}); "
        "otherwise a running task is delivered a second time."
    )
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
Q_CLUSTER: dict[str, object] = {
    "name": env_str("FARM_Q_NAME", "farm"),
    "workers": env_int("FARM_Q_WORKERS", 2, minimum=1),
    "timeout": Q_TIMEOUT,
    "retry": Q_RETRY,
    "max_attempts": env_int("FARM_Q_MAX_ATTEMPTS", 5, minimum=0),
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 2000,
    "label": "Task queue",
    "poll": 1,
    "bulk": 1,
}
if FARM_QUEUE == "redis":
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

FARM_OPERATION_LEASE_SECONDS = env_int("FARM_OPERATION_LEASE_SECONDS", 60, minimum=3)
FARM_OPERATION_HEARTBEAT_SECONDS = max(1, FARM_OPERATION_LEASE_SECONDS // 4)
# Deliveries of one operation to a worker before it is failed instead of run again
# (each earlier worker died inside a step); a person can still retry it.
FARM_OPERATION_MAX_ATTEMPTS = env_int("FARM_OPERATION_MAX_ATTEMPTS", 5, minimum=1)
# Extra modules that register operation kinds (used by tests and plug-ins).
FARM_OPERATION_MODULES = env_list("FARM_OPERATION_MODULES", [])
