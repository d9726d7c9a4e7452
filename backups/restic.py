"""The one module that runs restic (Debian's 0.14): repositories, backups, snapshots, restores.

Every backup carries a unique ``run=<uuid>`` tag besides the caller's tags, so
that its snapshot can be found (and removed) whatever happened to the process
that made it, and ``--host farm`` so snapshots group the same way on any node.
The runner lives in ``backups.restic_cli``, the streamed backup in
``backups.restic_stream``; this module is what the rest of the panel imports.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import secrets
import subprocess
import time as clock
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from backups.restic_cli import (
    HOST,
    Repository,
    Snapshot,
    Summary,
    argv,
    env,
    forget,
    parse_summary,
    remove_run,
    run,
    setting,
    snapshots,
    summary_of_run,
    tag_args,
    tag_pairs,
)
from backups.restic_cli import snapshot_id as _id
from backups.restic_errors import DumpFailed, ResticError
from backups.restic_stream import backup_stream
from backups.streams import StreamProducer, base_env
from farm import processes

__all__ = [
    "HOST",
    "CheckResult",
    "DumpFailed",
    "Repository",
    "ResticError",
    "Snapshot",
    "StreamProducer",
    "Summary",
    "backup_paths",
    "backup_stream",
    "check",
    "dump",
    "ensure_repository",
    "forget",
    "forget_by_policy",
    "ls",
    "repository_from_settings",
    "restic_version",
    "restore",
    "snapshots",
]

log = logging.getLogger(__name__)

_SUBSET = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?%|[0-9]+/[0-9]+|[0-9]+[KMGT]?)$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_URL_SCHEME = re.compile(r"^[a-z0-9]+:")


@dataclass
class CheckResult:
    ok: bool
    output: str
    seconds: float


# -- configuration ----------------------------------------------------------------


def _restic_password() -> str:
    password = str(setting("FARM_RESTIC_PASSWORD") or "")
    if password:
        return password
    if getattr(settings, "PRODUCTION", False):
        raise ImproperlyConfigured(
            "FARM_RESTIC_PASSWORD (or FARM_RESTIC_PASSWORD_FILE) must be set in production: "
            "without it the backups cannot be read."
        )
    # Development and tests: one password per checkout, kept with the other secrets.
    secrets_dir = Path(settings.FARM_SECRETS_DIR)
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = secrets_dir / "restic-password"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def repository_from_settings() -> Repository:
    """The farm's repository: S3 when endpoint and bucket are set, else a local directory."""
    var_dir = Path(getattr(settings, "VAR_DIR", Path(settings.BASE_DIR) / "var"))
    cache = Path(setting("FARM_RESTIC_CACHE_DIR") or var_dir / "cache" / "restic")
    endpoint = str(setting("FARM_BACKUP_S3_ENDPOINT") or "").rstrip("/")
    bucket = str(setting("FARM_BACKUP_S3_BUCKET") or "")
    if not (endpoint or bucket):
        location = str(setting("FARM_BACKUP_REPOSITORY") or var_dir / "restic-repo")
        if not _URL_SCHEME.match(location):
            location = str(Path(location).absolute())
        return Repository(location, _restic_password(), {}, cache)
    if not (endpoint and bucket):
        raise ImproperlyConfigured(
            "FARM_BACKUP_S3_ENDPOINT and FARM_BACKUP_S3_BUCKET must be set together."
        )
    if not endpoint.startswith(("https://", "http://")):
        raise ImproperlyConfigured(
            f"FARM_BACKUP_S3_ENDPOINT={endpoint!r} must start with https:// (or http://)."
        )
    if not _BUCKET.match(bucket):
        raise ImproperlyConfigured(f"FARM_BACKUP_S3_BUCKET={bucket!r} is not a bucket name.")
    key = str(setting("FARM_BACKUP_S3_ACCESS_KEY_ID") or "")
    secret = str(setting("FARM_BACKUP_S3_SECRET_ACCESS_KEY") or "")
    if not (key and secret):
        raise ImproperlyConfigured(
            "FARM_BACKUP_S3_ACCESS_KEY_ID and FARM_BACKUP_S3_SECRET_ACCESS_KEY (or their _FILE "
            "variants) must be set with FARM_BACKUP_S3_ENDPOINT."
        )
    prefix = str(setting("FARM_BACKUP_S3_PREFIX") or "").strip("/")
    url = f"s3:{endpoint}/{bucket}" + (f"/{prefix}" if prefix else "")
    keys = {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": str(setting("FARM_BACKUP_S3_REGION") or "us-east-1"),
    }
    return Repository(url, _restic_password(), keys, cache)


# -- repository -------------------------------------------------------------------


@functools.cache
def restic_version() -> str:
    out = processes.run(
        ["restic", "version"], capture_output=True, text=True, env=base_env(), check=True
    ).stdout
    match = re.search(r"restic ([0-9][^ ]*)", out)
    return match.group(1) if match else out.strip()


def s3_location(url: str) -> tuple[str, str]:
    """``s3:http://host:port/bucket/prefix`` -> (``http://host:port``, ``bucket``)."""
    rest = url.removeprefix("s3:")
    if not rest.startswith(("http://", "https://")):
        rest = "https://" + rest
    scheme, _, remainder = rest.partition("://")
    netloc, _, path = remainder.partition("/")
    return f"{scheme}://{netloc}", path.strip("/").split("/")[0]


# Repositories seen to exist (and to open with their password) lately: every backup
# starts with ensure_repository, and asking restic again each time costs ~0.3 s.
_KNOWN_FOR_SECONDS = 300.0
_known: dict[tuple[str, str], float] = {}


def _key(repo: Repository) -> tuple[str, str]:
    return repo.url, hashlib.sha256(repo.password.encode()).hexdigest()


def ensure_repository(repo: Repository) -> bool:
    """Create the bucket (S3) and the repository unless they exist; True when it created one."""
    seen = _known.get(_key(repo))
    if seen is not None and clock.monotonic() - seen < _KNOWN_FOR_SECONDS:
        return False
    created = _ensure_repository(repo)
    _known[_key(repo)] = clock.monotonic()
    return created


def _ensure_repository(repo: Repository) -> bool:
    if repo.is_s3:
        from backups import s3

        endpoint, bucket = s3_location(repo.url)
        s3.ensure_bucket(
            endpoint,
            bucket,
            repo.env.get("AWS_DEFAULT_REGION", "us-east-1"),
            repo.env.get("AWS_ACCESS_KEY_ID", ""),
            repo.env.get("AWS_SECRET_ACCESS_KEY", ""),
        )
    elif not _URL_SCHEME.match(repo.url) or repo.url.startswith("local:"):
        Path(repo.url.removeprefix("local:")).parent.mkdir(parents=True, exist_ok=True)
    try:
        run(repo, ["cat", "config"])
        return False
    except ResticError as exc:
        if exc.kind != "not_initialised":
            raise
    try:
        run(repo, ["init"])
    except ResticError as exc:
        if re.search(r"already (?:exists|initialized)", exc.message):
            return False  # another worker created it a moment ago
        raise
    log.info("created restic repository %s", repo.url)
    return True


# -- backups --------------------------------------------------------------------


def backup_paths(
    repo: Repository,
    paths: Iterable[Path | str],
    *,
    tags: dict[str, str],
    excludes: Sequence[str] = (),
    time: datetime | None = None,
) -> Summary:
    """Back files and directories up; ``time`` backdates the snapshot (imports, tests).

    A snapshot restic calls incomplete (exit status 3: some files could not be
    read) is forgotten and the backup fails: a backup is whole or absent.
    """
    sources = [str(Path(p).absolute()) for p in paths]
    if not sources:
        raise ValueError("backup_paths needs at least one path.")
    run_id = uuid.uuid4().hex
    args = ["backup", "--json", "--host", HOST, *tag_args({**tags, "run": run_id})]
    for pattern in excludes:
        args += ["--exclude", pattern]
    if time is not None:
        args += ["--time", time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")]
    returncode, stdout, stderr = run(repo, [*args, "--", *sources], ok_codes=(0, 3))
    if returncode == 3:
        leftover = remove_run(repo, run_id)
        raise ResticError.from_stderr(
            command="backup", url=repo.url, returncode=3, stderr=stderr + leftover, kind="failed"
        )
    return summary_of_run(repo, run_id, parse_summary(stdout))


# -- retention, checks, restores ----------------------------------------------------


def forget_by_policy(
    repo: Repository,
    *,
    tags: dict[str, str],
    keep_daily: int,
    keep_weekly: int,
    keep_monthly: int,
    prune: bool = False,
) -> list[str]:
    """Apply a retention policy to the snapshots carrying ``tags``; returns the ids removed.

    Snapshots are grouped by host and paths, never by tags (each run has its own).
    """
    if not tags:
        raise ValueError("forget_by_policy needs tags: it never applies to a whole repository.")
    keep = {"daily": keep_daily, "weekly": keep_weekly, "monthly": keep_monthly}
    if any(count < 0 for count in keep.values()):
        raise ValueError(f"Retention counts cannot be negative: {keep}.")
    if not any(keep.values()):
        return []  # restic keeps everything when no policy is given
    args = ["forget", "--json", "--group-by", "host,paths", "--tag", ",".join(tag_pairs(tags))]
    for unit, count in keep.items():
        args += [f"--keep-{unit}", str(count)]
    _, stdout, _ = run(repo, [*args, *(["--prune"] if prune else [])])
    removed: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("["):
            for group in json.loads(line):
                removed += [raw["id"] for raw in group.get("remove") or []]
            break
    return removed


def check(repo: Repository, *, read_data_subset: str | None = None) -> CheckResult:
    """``restic check``: ok=False when the repository has errors; raises when it cannot look."""
    args = ["check"]
    if read_data_subset is not None:
        if not _SUBSET.match(read_data_subset):
            raise ValueError(f"Refusing unexpected --read-data-subset {read_data_subset!r}.")
        args += ["--read-data-subset", read_data_subset]
    started = clock.monotonic()
    try:
        _, stdout, stderr = run(repo, args)
        ok, output = True, stdout + stderr
    except ResticError as exc:
        if exc.kind != "failed":
            raise
        ok, output = False, exc.message
    return CheckResult(ok=ok, output=output.strip(), seconds=clock.monotonic() - started)


def restore(
    repo: Repository,
    snapshot_id: str,
    target: Path,
    *,
    include: list[str] | None = None,
    verify: bool = False,
) -> None:
    """``verify``: restic reads every restored file back and checks its content against
    the snapshot's own hashes (restic fails when one differs)."""
    args = ["restore", _id(snapshot_id), "--target", str(target)]
    if verify:
        args.append("--verify")
    for pattern in include or []:
        args += ["--include", pattern]
    run(repo, args)


def dump(
    repo: Repository, snapshot_id: str, path_in_snapshot: str, *, stderr: Any = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """``restic dump`` of one file to the returned process's stdout; the caller waits for it."""
    path = "/" + path_in_snapshot.lstrip("/")
    return processes.popen(
        argv(repo, "dump", "--", _id(snapshot_id), path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env(repo),
        bufsize=0,
    )


def ls(repo: Repository, snapshot_id: str) -> list[dict[str, Any]]:
    """The nodes (files, directories...) of a snapshot, as restic's JSON describes them."""
    _, stdout, _ = run(repo, ["ls", "--json", _id(snapshot_id)])
    nodes = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [node for node in nodes if node.get("struct_type") == "node"]
