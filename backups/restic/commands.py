"""The restic commands the farm runs on a repository: back paths up, forget by a
policy (and prune), check, restore, dump one file, list a snapshot.

Every backup carries a unique ``run=<uuid>`` tag besides the caller's tags, so
that its snapshot can be found (and removed) whatever happened to the process
that made it, and ``--host farm`` so snapshots group the same way on any node.
"""

from __future__ import annotations

import json
import re
import subprocess
import time as clock
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backups.restic.cli import (
    HOST,
    Repository,
    Summary,
    argv,
    env,
    parse_summary,
    remove_run,
    run,
    summary_of_run,
    tag_args,
    tag_pairs,
)
from backups.restic.cli import snapshot_id as _id
from backups.restic.errors import ResticError
from farm import processes

_SUBSET = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?%|[0-9]+/[0-9]+|[0-9]+[KMGT]?)$")


@dataclass
class CheckResult:
    ok: bool
    output: str
    seconds: float


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


def prune(repo: Repository) -> None:
    """``restic prune``: rewrite the packs that hold only forgotten data (the whole repository)."""
    run(repo, ["prune"])
