"""What runs restic (Debian's 0.14): the farm's repository, backups of paths and of a
stream, snapshots, retention, checks, restores, and the Backup row around each backup.

This module is the package's public API; nothing outside ``backups.restic`` imports
its modules (an import-linter contract says so). Where things are:
``repository`` (where the repository is, its password, creating it), ``commands``
(``restic backup`` of paths, forget, prune, check, restore, dump, ls), ``stream``
(``restic backup --stdin`` fed by a producer, ``pipes``), ``cli`` (argv, environment,
exit statuses, the snapshot listing), ``errors``, ``s3`` (the only boto3 module),
``manifests``, ``record`` (the Backup rows) and ``settings``.
"""

from backups.restic.cli import (
    HOST,
    Repository,
    Snapshot,
    Summary,
    argv,
    env,
    forget,
    setting,
    snapshots,
)
from backups.restic.commands import (
    CheckResult,
    backup_paths,
    check,
    dump,
    forget_by_policy,
    ls,
    prune,
    restore,
)
from backups.restic.errors import ProducerFailed, ResticError, classify
from backups.restic.manifests import (
    compare_manifests,
    files_manifest,
    read_manifest,
    snapshot_manifest,
    write_manifest,
)
from backups.restic.pipes import (
    StreamProducer,
    SubprocessProducer,
    base_env,
    enlarge_pipe,
    pump,
)
from backups.restic.record import (
    MANIFEST_NAME,
    SiteRef,
    back_up_config,
    back_up_directory,
    run_backup,
    site_tags,
)
from backups.restic.repository import (
    ensure_repository,
    repository_from_settings,
    restic_version,
    s3_location,
)
from backups.restic.settings import LONGEST_SUBPROCESS_TIMEOUT
from backups.restic.stream import backup_stream

__all__ = [
    "HOST",
    "LONGEST_SUBPROCESS_TIMEOUT",
    "MANIFEST_NAME",
    "CheckResult",
    "ProducerFailed",
    "Repository",
    "ResticError",
    "SiteRef",
    "Snapshot",
    "StreamProducer",
    "SubprocessProducer",
    "Summary",
    "argv",
    "back_up_config",
    "back_up_directory",
    "backup_paths",
    "backup_stream",
    "base_env",
    "check",
    "classify",
    "compare_manifests",
    "dump",
    "enlarge_pipe",
    "ensure_repository",
    "env",
    "files_manifest",
    "forget",
    "forget_by_policy",
    "ls",
    "prune",
    "pump",
    "read_manifest",
    "repository_from_settings",
    "restic_version",
    "restore",
    "run_backup",
    "s3_location",
    "setting",
    "site_tags",
    "snapshot_manifest",
    "snapshots",
    "write_manifest",
]
