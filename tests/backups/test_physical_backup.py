"""The cluster's physical backup: mariabackup streamed into a snapshot that extracts,
and a failure (or a stream that never says "completed OK!") keeps nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backups import restic
from backups.mariadb import DumpFailed, physical_backup_producer
from tests.fakes.s3 import free_port

pytestmark = [pytest.mark.mariadb, pytest.mark.external]


@pytest.mark.slow
def test_a_physical_backup_streams_into_a_snapshot_that_extracts(
    mariadb, local_repo, tmp_path: Path
):
    argv = [
        "mariabackup",
        "--backup",
        "--stream=xbstream",
        "--user=root",
        "--datadir=/var/lib/mysql",
        f"--target-dir={tmp_path / 'target'}",
    ]
    summary = restic.backup_stream(
        local_repo,
        physical_backup_producer(argv, {}),
        filename="cluster.xb",
        tags={"kind": "cluster"},
    )

    extracted = tmp_path / "extracted"
    extracted.mkdir()
    source = restic.dump(local_repo, summary.snapshot_id, "cluster.xb")
    subprocess.run(["mbstream", "-x", "-C", str(extracted)], stdin=source.stdout, check=True)
    assert source.wait() == 0
    assert (extracted / "xtrabackup_checkpoints").exists()
    assert (extracted / "ibdata1").exists()


def test_a_physical_backup_that_fails_keeps_nothing(local_repo, tmp_path: Path):
    argv = ["mariabackup", "--backup", "--stream=xbstream", "--datadir=/nonexistent"]
    argv += [f"--target-dir={tmp_path}", "--user=root", "--host=127.0.0.1", f"--port={free_port()}"]

    with pytest.raises(DumpFailed) as caught:
        restic.backup_stream(
            local_repo, physical_backup_producer(argv), filename="cluster.xb", tags={"kind": "c"}
        )

    assert "mariabackup" in caught.value.message
    assert restic.snapshots(local_repo) == []


def test_a_producer_that_never_says_completed_ok_is_incomplete(local_repo):
    producer = physical_backup_producer([sys.executable, "-c", "print('data')"])
    with pytest.raises(DumpFailed, match="completed OK!"):
        restic.backup_stream(local_repo, producer, filename="cluster.xb", tags={"kind": "c"})
    assert restic.snapshots(local_repo) == []
