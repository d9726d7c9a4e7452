"""restic: repositories, file backups, retention, checks, and errors people can act on."""

from __future__ import annotations

import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from backups import restic
from backups.restic import (
    ResticError,
    SubprocessProducer,
    classify,
    compare_manifests,
    files_manifest,
    read_manifest,
    s3,
    write_manifest,
)
from backups.restic import env as restic_env
from tests.backups.conftest import new_local_repository, s3_repository
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY

# Exercises an external system through its module; the panel database plays no part.
pytestmark = pytest.mark.external

TAGS = {"site": "9", "kind": "files"}

# -- configuration ----------------------------------------------------------------


def test_the_default_repository_is_a_local_directory_with_a_generated_password(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.FARM_SECRETS_DIR = tmp_path / "secrets"
    settings.FARM_RESTIC_PASSWORD = ""
    settings.FARM_BACKUP_REPOSITORY = ""
    settings.FARM_BACKUP_S3_ENDPOINT = settings.FARM_BACKUP_S3_BUCKET = ""
    settings.FARM_RESTIC_CACHE_DIR = ""

    repo = restic.repository_from_settings()

    assert repo.url == str(tmp_path / "var" / "restic-repo")
    assert repo.cache_dir == tmp_path / "var" / "cache" / "restic"
    password_file = tmp_path / "secrets" / "restic-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert repo.password == password_file.read_text().strip() and len(repo.password) > 30
    assert restic.repository_from_settings().password == repo.password  # generated once
    assert repo.password not in repr(repo)


def test_s3_settings_make_an_s3_repository(settings):
    settings.FARM_RESTIC_PASSWORD = "from-settings"
    settings.FARM_BACKUP_S3_ENDPOINT = "https://objects.example.test/"
    settings.FARM_BACKUP_S3_BUCKET = "farm-backups"
    settings.FARM_BACKUP_S3_PREFIX = "/restic/"
    settings.FARM_BACKUP_S3_REGION = "nyc3"
    settings.FARM_BACKUP_S3_ACCESS_KEY_ID = "key"
    settings.FARM_BACKUP_S3_SECRET_ACCESS_KEY = "secret"

    repo = restic.repository_from_settings()

    assert repo.url == "s3:https://objects.example.test/farm-backups/restic"
    assert repo.password == "from-settings"
    assert repo.env == {
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "nyc3",
    }
    assert "s3.region=nyc3" in restic.argv(repo, "snapshots")
    assert "secret" not in " ".join(restic.argv(repo, "snapshots"))


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"FARM_BACKUP_S3_BUCKET": ""}, "must be set together"),
        ({"FARM_BACKUP_S3_ENDPOINT": "objects.example.test"}, "must start with https://"),
        ({"FARM_BACKUP_S3_BUCKET": "Bad_Bucket"}, "is not a bucket name"),
        ({"FARM_BACKUP_S3_SECRET_ACCESS_KEY": ""}, "SECRET_ACCESS_KEY"),
    ],
)
def test_incomplete_s3_settings_fail_loudly(settings, changes, complaint):
    settings.FARM_RESTIC_PASSWORD = "pw"
    settings.FARM_BACKUP_S3_ENDPOINT = "https://objects.example.test"
    settings.FARM_BACKUP_S3_BUCKET = "farm-backups"
    settings.FARM_BACKUP_S3_ACCESS_KEY_ID = "key"
    settings.FARM_BACKUP_S3_SECRET_ACCESS_KEY = "secret"
    for name, value in changes.items():
        setattr(settings, name, value)

    with pytest.raises(ImproperlyConfigured, match=complaint):
        restic.repository_from_settings()


def test_production_refuses_to_invent_a_password(settings, tmp_path):
    settings.PRODUCTION = True
    settings.FARM_RESTIC_PASSWORD = ""
    settings.FARM_SECRETS_DIR = tmp_path
    settings.FARM_BACKUP_S3_ENDPOINT = settings.FARM_BACKUP_S3_BUCKET = ""

    with pytest.raises(ImproperlyConfigured, match="FARM_RESTIC_PASSWORD"):
        restic.repository_from_settings()
    assert not (tmp_path / "restic-password").exists()


def test_restic_gets_secrets_in_its_environment_only(local_repo):
    environment = restic_env(local_repo)
    assert environment["RESTIC_PASSWORD"] == local_repo.password
    assert local_repo.password not in " ".join(restic.argv(local_repo, "snapshots"))
    assert not any(name.startswith("AWS_") for name in environment)


def test_restic_version():
    assert restic.restic_version().startswith("0.")


# -- repositories -------------------------------------------------------------------


def test_ensure_repository_creates_a_local_repository_once(tmp_path):
    repo = new_local_repository(tmp_path / "deep" / "down")
    assert restic.ensure_repository(repo) is True
    assert restic.ensure_repository(repo) is False
    assert restic.snapshots(repo) == []


def test_ensure_repository_creates_the_bucket_and_the_repository_once(moto, tmp_path):
    bucket = f"farm-{secrets.token_hex(6)}"
    repo = s3_repository(moto, bucket, tmp_path)
    client = boto3.client(
        "s3",
        endpoint_url=moto,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )

    assert restic.ensure_repository(repo) is True
    objects = client.list_objects_v2(Bucket=bucket)["KeyCount"]
    assert restic.ensure_repository(repo) is False
    assert s3.ensure_bucket(moto, bucket, REGION, ACCESS_KEY, SECRET_KEY) is False
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == objects
    assert client.head_object(Bucket=bucket, Key="restic/config")


def test_a_missing_repository_is_not_initialised(tmp_path):
    with pytest.raises(ResticError) as caught:
        restic.snapshots(new_local_repository(tmp_path))
    assert caught.value.kind == "not_initialised" and not caught.value.retryable
    assert "There is no restic repository at" in caught.value.message


def test_an_unreachable_bucket_endpoint_is_an_s3_error(tmp_path):
    from tests.fakes.s3 import free_port

    with pytest.raises(s3.S3Error) as caught:
        s3.ensure_bucket(f"http://127.0.0.1:{free_port()}", "farm-x", REGION, "k", "s")
    assert caught.value.retryable


def test_a_wrong_password_is_named_and_not_retryable(local_repo):
    wrong = restic.Repository(local_repo.url, "wrong", {}, None)
    with pytest.raises(ResticError) as caught:
        restic.snapshots(wrong)
    assert caught.value.kind == "wrong_password" and not caught.value.retryable
    assert "password does not open" in caught.value.message
    assert "wrong password or no key found" in caught.value.message  # restic's own words


def test_a_locked_repository_is_retryable(local_repo, tmp_path):
    (tmp_path / "f").write_text("x")
    summary = restic.backup_paths(local_repo, [tmp_path / "f"], tags=TAGS)
    holder = subprocess.Popen(  # a running backup holds a lock until its stdin ends
        restic.argv(local_repo, "backup", "--stdin"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=restic_env(local_repo),
    )
    try:
        time.sleep(1.5)
        with pytest.raises(ResticError) as caught:
            restic.forget(local_repo, [summary.snapshot_id])
    finally:
        holder.send_signal(signal.SIGINT)
        holder.wait()
    assert caught.value.kind == "locked" and caught.value.retryable
    assert "already locked" in caught.value.message


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("Fatal: wrong password or no key found", "wrong_password"),
        (
            'Fatal: unable to open config file: Stat: Get "http://127.0.0.1:1/b/?location=": '
            "dial tcp 127.0.0.1:1: connect: connection refused\nIs there a repository at the "
            "following location?",
            "unreachable",
        ),
        (
            "Fatal: unable to open config file: Stat: The specified key does not exist.\n"
            "Is there a repository at the following location?",
            "not_initialised",
        ),
        ("Fatal: unable to save snapshot: write /r/data/x: no space left on device", "no_space"),
        ("unable to create lock in backend: repository is already locked by PID 1", "locked"),
        ('invalid id "nope": no matching ID found for prefix "nope"', "not_found"),
        ("Fatal: something else entirely", "failed"),
    ],
)
def test_restic_errors_are_classified_from_its_words(stderr, kind):
    assert classify(stderr) == kind


# -- file backups -------------------------------------------------------------------


def make_tree(root: Path) -> None:
    (root / "wp-content" / "uploads" / "2024").mkdir(parents=True)
    (root / "wp-content" / "uploads" / "2024" / "photo.jpg").write_bytes(os.urandom(300_000))
    (root / "wp-content" / "uploads" / "été ☃ 日本.txt").write_text("Grüße\n")
    (root / "wp-config.php").write_text("<?php define('DB_NAME', 'wp_9');\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "wp-content" / "cache").mkdir()  # an empty directory
    (root / "latest").symlink_to("wp-content/uploads/2024")
    (root / "binary\x01name.bin").write_bytes(bytes(range(256)))


def test_files_restore_to_the_same_hashes_as_their_manifest(repo, tmp_path):
    site = tmp_path / "site"
    make_tree(site)
    manifest_file = write_manifest(tmp_path / "meta" / "files-manifest.json", files_manifest(site))

    summary = restic.backup_paths(repo, [site, manifest_file], tags=TAGS)
    target = tmp_path / "restored"
    restic.restore(repo, summary.snapshot_id, target)

    restored_manifest = read_manifest(target / manifest_file.relative_to("/"))
    assert (
        compare_manifests(restored_manifest, files_manifest(target / site.relative_to("/"))) == []
    )
    assert restored_manifest == files_manifest(site)
    assert restored_manifest["latest"] == "symlink:wp-content/uploads/2024"
    assert restored_manifest["wp-content/cache"] == "directory"
    assert len(restored_manifest["wp-content/uploads/été ☃ 日本.txt"]) == 64
    [snapshot] = restic.snapshots(repo, tags=TAGS)
    assert snapshot.id == summary.snapshot_id and snapshot.hostname == restic.HOST
    assert snapshot.time.tzinfo is not None
    assert summary.files == 6 and summary.total_bytes > 300_000


def test_a_manifest_comparison_names_what_differs():
    problems = compare_manifests({"a": "1", "b": "2"}, {"b": "3", "c": "4"})
    assert problems == ["missing: a", "unexpected: c", "changed: b"]


def test_restore_can_pick_paths_and_ls_lists_the_snapshot(local_repo, tmp_path):
    site = tmp_path / "site"
    make_tree(site)
    summary = restic.backup_paths(local_repo, [site], tags=TAGS)

    paths = {node["path"] for node in restic.ls(local_repo, summary.snapshot_id)}
    assert f"{site}/wp-config.php" in paths
    restic.restore(
        local_repo, summary.snapshot_id, tmp_path / "out", include=[f"{site}/wp-config.php"]
    )
    restored = tmp_path / "out" / site.relative_to("/")
    assert [p.name for p in restored.iterdir()] == ["wp-config.php"]


def test_backing_up_a_missing_path_fails_without_a_snapshot(local_repo, tmp_path):
    with pytest.raises(ResticError) as caught:
        restic.backup_paths(local_repo, [tmp_path / "nothing-here"], tags=TAGS)
    assert caught.value.kind == "not_found"
    assert restic.snapshots(local_repo) == []


# -- retention and checks -----------------------------------------------------------


def test_forget_by_policy_keeps_what_the_policy_says(local_repo, tmp_path):
    (tmp_path / "f").write_text("x")
    made = {
        day: restic.backup_paths(
            local_repo, [tmp_path / "f"], tags=TAGS, time=datetime(2024, 1, day, 3, tzinfo=UTC)
        ).snapshot_id
        for day in range(1, 11)
    }
    other_site = restic.backup_paths(
        local_repo, [tmp_path / "f"], tags={"site": "10", "kind": "files"}
    ).snapshot_id

    removed = restic.forget_by_policy(
        local_repo, tags=TAGS, keep_daily=2, keep_weekly=2, keep_monthly=0, prune=True
    )

    # Daily: 10 and 9 January. Weekly: the newest of ISO week 2 (the 10th, already
    # kept) and of week 1 (Sunday the 7th).
    kept = {made[10], made[9], made[7]}
    assert sorted(removed) == sorted(set(made.values()) - kept)
    remaining = {s.id for s in restic.snapshots(local_repo)}
    assert remaining == kept | {other_site}
    assert (
        restic.forget_by_policy(local_repo, tags=TAGS, keep_daily=0, keep_weekly=0, keep_monthly=0)
        == []
    )


def test_check_passes_on_a_good_repository_and_fails_on_a_corrupted_pack(local_repo, tmp_path):
    (tmp_path / "data.bin").write_bytes(os.urandom(2_000_000))
    restic.backup_paths(local_repo, [tmp_path / "data.bin"], tags=TAGS)

    good = restic.check(local_repo, read_data_subset="100%")
    assert good.ok and "no errors were found" in good.output and good.seconds > 0

    packs = sorted(Path(local_repo.url, "data").rglob("*"), key=lambda p: p.stat().st_size)
    biggest = packs[-1]
    biggest.chmod(0o600)
    with biggest.open("r+b") as pack:
        pack.seek(biggest.stat().st_size // 2)
        pack.write(b"\xff" * 64)

    bad = restic.check(local_repo, read_data_subset="100%")
    assert not bad.ok
    assert biggest.name[:8] in bad.output or "error" in bad.output.lower()


# -- streamed backups ---------------------------------------------------------------


class Stream(SubprocessProducer):
    """A Python child writing ``size`` bytes, for streams with no database behind them."""

    def __init__(self, code: str) -> None:
        super().__init__([sys.executable, "-c", code], description="test stream")


def test_a_stream_becomes_one_file_in_a_snapshot(local_repo, tmp_path):
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 40000)"
    summary = restic.backup_stream(
        local_repo, Stream(code), filename="stream.bin", tags={"kind": "db"}
    )

    assert summary.total_bytes == 256 * 40000
    source = restic.dump(local_repo, summary.snapshot_id, "stream.bin")
    data, _ = source.communicate()
    assert data == bytes(range(256)) * 40000 and source.returncode == 0


def test_a_stream_whose_producer_fails_leaves_no_snapshot(local_repo):
    code = "import sys; sys.stdout.write('half'); sys.stderr.write('it broke'); sys.exit(3)"
    with pytest.raises(restic.ProducerFailed) as caught:
        restic.backup_stream(local_repo, Stream(code), filename="s.bin", tags={"kind": "db"})
    assert "exited with status 3" in caught.value.message
    assert caught.value.stderr_tail == "it broke" and "it broke" in caught.value.message
    assert restic.snapshots(local_repo) == []


def test_a_worker_that_dies_mid_stream_leaves_no_snapshot(local_repo, tmp_path):
    """If the panel's worker is killed, restic must not take the cut stream as complete."""
    script = f"""
import django, sys
django.setup()
from backups import restic
from backups.restic import SubprocessProducer
repo = restic.Repository({local_repo.url!r}, {local_repo.password!r}, {{}}, None)
producer = SubprocessProducer(
    [sys.executable, "-c", "import sys\\nwhile True: sys.stdout.buffer.write(bytes(65536))"]
)
def announce(chunk):
    if chunk:
        print("streaming", flush=True)
restic.backup_stream(repo, producer, filename="cut.bin", tags={{"kind": "db"}}, on_data=announce)
"""
    worker = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=django_settings.BASE_DIR,
        stdout=subprocess.PIPE,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "farm.settings"},
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == b"streaming"
    time.sleep(0.5)
    worker.kill()
    worker.wait()
    time.sleep(3)  # what a surviving restic would need to write a snapshot

    assert restic.snapshots(local_repo) == []
