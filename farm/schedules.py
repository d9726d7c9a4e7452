"""The periodic tasks of the farm, declared once and applied idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from django_q.models import Schedule


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str
    minutes: int


# Apps add theirs here as they gain periodic work.
PERIODIC_TASKS: list[Periodic] = [
    Periodic("farm: re-enqueue stale operations", "farm.tasks.requeue_stale_operations", 1),
    Periodic("nodes: sync the node inventory", "nodes.tasks.sync_node_inventory", 1),
    Periodic("sites: reconcile with Swarm, MariaDB and disk", "sites.tasks.reconcile_sites", 10),
    Periodic("sites: record the services' states", "sites.tasks.record_service_states", 1),
    Periodic("sites: run WordPress cron", "sites.tasks.run_wordpress_cron", 5),
    Periodic("monitoring: pull firing alerts from Alertmanager", "monitoring.tasks.sync_alerts", 1),
    Periodic(
        "monitoring: resolve NodeDown for nodes ready again",
        "monitoring.tasks.resolve_node_down_alerts",
        1,
    ),
    Periodic("backups: claim what is due", "sites.tasks.backup_tick", 1),
    Periodic("backups: RPO check and alerts", "sites.tasks.check_rpo", 10),
    Periodic(
        "backups: verify a rotating 1/30 of the repository",
        "backups.tasks.check_repository",
        24 * 60,
    ),
    Periodic("backups: retention (forget and prune)", "backups.tasks.apply_retention", 24 * 60),
    Periodic("backups: restore drill", "sites.tasks.run_drills", 24 * 60),
    Periodic("backups: cluster database (mariabackup)", "backups.tasks.back_up_cluster", 24 * 60),
]


def ensure_schedules() -> list[tuple[str, bool]]:
    results = []
    for task in PERIODIC_TASKS:
        _, created = Schedule.objects.update_or_create(
            name=task.name,
            defaults={
                "func": task.func,
                "schedule_type": Schedule.MINUTES,
                "minutes": task.minutes,
                "repeats": -1,
            },
        )
        results.append((task.name, created))
    return results
