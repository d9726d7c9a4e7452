"""The cluster-level physical backup: ``mariabackup --backup --galera-info`` of the farm's
MariaDB, streamed from inside its container into restic (for whole-cluster recovery);
its operation kind (``backup.cluster``), and the unpacking of such a snapshot."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from backups import restic
from backups.mariadb.tools import physical_backup_producer
from backups.models import Backup, BackupKind
from farm import processes
from farm.errors import FarmError
from farm.models import Operation
from farm.operations import OperationKind, Step, StepContext, register_kind
from monitoring.alerts import raise_alert, resolve_alert
from nodes.bootstrap import secret_value
from nodes.swarm import client, translate_errors

SERVICE = "farm_mariadb"
FILENAME = "cluster.xbstream"


def mariadb_container() -> str:
    with translate_errors("Finding the MariaDB container"):
        tasks = client().api.tasks(filters={"service": SERVICE, "desired-state": "running"})
    for task in tasks:
        container = task.get("Status", {}).get("ContainerStatus", {}).get("ContainerID")
        if task.get("Status", {}).get("State") == "running" and container:
            return str(container)
    raise FarmError(
        "The farm's MariaDB is not running here, so it cannot be backed up.", retryable=True
    )


def backup_cluster(*, reason: str, operation_id: int | None, log: Callable[[str], None]) -> Backup:
    password = settings.FARM_MARIADB_ADMIN_PASSWORD or secret_value("mariadb-root-password")
    container = mariadb_container()
    # The password reaches mariabackup through the environment (docker exec -e NAME
    # copies it from ours), never through an argument anyone could read.
    producer = physical_backup_producer(
        [
            "docker",
            "exec",
            "-e",
            "MYSQL_PWD",
            container,
            "mariabackup",
            "--backup",
            "--stream=xbstream",
            "--galera-info",
            "--user=root",
            "--target-dir=/tmp",
        ],
        env={
            "MYSQL_PWD": password,
            **({"DOCKER_HOST": settings.DOCKER_HOST} if settings.DOCKER_HOST else {}),
        },
    )

    def take(repo: restic.Repository, backup: Backup) -> tuple[restic.Summary, dict[str, Any]]:
        summary = restic.backup_stream(
            repo, producer, filename=FILENAME, tags={"kind": "cluster", "backup": str(backup.pk)}
        )
        return summary, {"container": container[:12]}

    return restic.run_backup(
        site=None,
        kind=BackupKind.CLUSTER,
        reason=reason,
        operation_id=operation_id,
        log=log,
        take=take,
    )


def restore_cluster(snapshot_id: str, target_dir: Path, log: Callable[[str], None]) -> Path:
    """Unpack a cluster snapshot into ``target_dir`` and prepare it with mariabackup, so
    it can become a MariaDB datadir (copy it in with the server stopped)."""
    target_dir.mkdir(parents=True, exist_ok=False)
    repo = restic.repository_from_settings()
    dump = restic.dump(repo, snapshot_id, FILENAME)
    with tempfile.TemporaryFile() as err:
        unpack = processes.run(
            ["mbstream", "-x", "-C", str(target_dir)], stdin=dump.stdout, stderr=err, check=False
        )
        dump_rc = dump.wait()
        if dump_rc != 0 or unpack.returncode != 0:
            err.seek(0)
            raise FarmError(
                f"Unpacking snapshot {snapshot_id[:8]} failed: "
                f"{err.read().decode(errors='replace')[-500:]}"
            )
    log(f"unpacked into {target_dir}")
    prepare = processes.run(
        ["mariabackup", "--prepare", f"--target-dir={target_dir}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if prepare.returncode != 0 or "completed OK!" not in prepare.stderr:
        raise FarmError(f"mariabackup --prepare failed: {prepare.stderr[-500:]}")
    log("prepared: the directory is a consistent datadir")
    return target_dir


class ClusterBackupStep(Step):
    name = "cluster"
    label = "mariabackup of the farm's MariaDB into restic"

    def run(self, ctx: StepContext) -> None:
        backup = backup_cluster(
            reason=ctx.params.get("reason", "scheduled"), operation_id=ctx.operation.pk, log=ctx.log
        )
        ctx.state["backup"] = backup.pk


@register_kind
class BackUpCluster(OperationKind):
    name = "backup.cluster"
    label = "Cluster backup"
    target_type = "cluster"
    operator_only = True
    steps = (ClusterBackupStep(),)

    def on_failed(self, operation: Operation) -> None:
        raise_alert(
            fingerprint="backup-failed-cluster",
            name="ClusterBackupFailed",
            severity="critical",
            source="backup",
            summary="The cluster database backup failed",
            description=operation.error,
        )

    def on_succeeded(self, operation: Operation) -> None:
        resolve_alert("backup-failed-cluster")
