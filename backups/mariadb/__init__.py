"""What runs mariadb-dump, mariadb and mariabackup: a site database into restic and back
(with its manifest), and the cluster's physical backup with its operation kind
(``backup.cluster``, registered when this package is imported).

This module is the package's public API; nothing outside ``backups.mariadb`` imports
its modules (an import-linter contract says so). Where things are: ``dump``
(``consistent_db_backup``, ``back_up_database``), ``restore`` (``restore_db``),
``tools`` (the option file and the producers), ``errors``, ``cluster`` and ``settings``.
The SQL itself is ``nodes.mariadb``'s.
"""

from backups.mariadb.cluster import (
    BackUpCluster,
    ClusterBackupStep,
    backup_cluster,
    restore_cluster,
)
from backups.mariadb.dump import DB_FILENAME, back_up_database, consistent_db_backup
from backups.mariadb.errors import DumpFailed, RestoreFailed
from backups.mariadb.restore import restore_db
from backups.mariadb.tools import (
    MariadbProducer,
    PhysicalBackupProducer,
    SiteDbDump,
    dump_completed,
    mariadb_option_file,
    physical_backup_producer,
)

__all__ = [
    "DB_FILENAME",
    "BackUpCluster",
    "ClusterBackupStep",
    "DumpFailed",
    "MariadbProducer",
    "PhysicalBackupProducer",
    "RestoreFailed",
    "SiteDbDump",
    "back_up_database",
    "backup_cluster",
    "consistent_db_backup",
    "dump_completed",
    "mariadb_option_file",
    "physical_backup_producer",
    "restore_cluster",
    "restore_db",
]
