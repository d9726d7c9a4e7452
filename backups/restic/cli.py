"""Running restic: argv, environment, exit statuses, and the snapshot listing every caller needs.

The password and S3 keys travel in the child's environment (RESTIC_PASSWORD,
AWS_*), never on a command line. TZ=UTC for restic, so snapshot times and
``--keep-daily`` days are UTC.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backups.restic import settings as restic_settings
from backups.restic.errors import ResticError
from backups.restic.pipes import base_env
from farm import processes
from farm.env import app_setting

log = logging.getLogger("backups.restic")

HOST = "farm"  # --host of every backup, so snapshots group the same way on any node
_TAG_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.:@+/-]{1,128}$")
_SNAPSHOT_ID = re.compile(r"^[0-9a-f]{8,64}$")
_INTERRUPT_GRACE_S = 15


def setting(name: str) -> Any:
    """A restic setting from django.conf.settings, else as backups.restic.settings read it."""
    return app_setting(name, restic_settings)


@dataclass(frozen=True)
class Repository:
    url: str
    password: str = field(repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    cache_dir: Path | None = None

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3:")


@dataclass
class Summary:
    snapshot_id: str
    total_bytes: int
    bytes_added: int
    files: int
    duration_s: float


@dataclass
class Snapshot:
    id: str
    short_id: str
    time: datetime
    tags: dict[str, str]
    paths: list[str]
    hostname: str


def argv(repo: Repository, *args: str) -> list[str]:
    command = ["restic"]
    command += ["--cache-dir", str(repo.cache_dir)] if repo.cache_dir else ["--no-cache"]
    if repo.is_s3:
        command += ["-o", "s3.bucket-lookup=path"]
        if region := repo.env.get("AWS_DEFAULT_REGION"):
            command += ["-o", f"s3.region={region}"]
    return [*command, *args]


def env(repo: Repository) -> dict[str, str]:
    return base_env(TZ="UTC", RESTIC_REPOSITORY=repo.url, RESTIC_PASSWORD=repo.password, **repo.env)


def interrupt(proc: subprocess.Popen[bytes]) -> bool:
    """Stop restic as Ctrl-C would (it then removes its lock); KILL it if it will not stop.

    Returns True when it had to be killed, which leaves a stale lock behind.
    """
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(_INTERRUPT_GRACE_S)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True


def run(
    repo: Repository,
    args: Sequence[str],
    *,
    ok_codes: tuple[int, ...] = (0,),
    timeout: float | None = None,
) -> tuple[int, str, str]:
    """Run one restic command; returns (exit status, stdout, stderr) or raises ResticError."""
    command = args[0]
    timeout = timeout or float(setting("FARM_RESTIC_TIMEOUT"))
    # Files, not pipes: restic prints a status line a second and must never block on it.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = processes.popen(
            argv(repo, *args), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env(repo)
        )
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            interrupt(proc)
            raise ResticError(
                f"restic {command} did not finish within {timeout:.0f} s on {repo.url}.",
                kind="unreachable",
            ) from None
        except BaseException:
            interrupt(proc)
            raise
        stdout, stderr = read_text(out), read_text(err)
    if returncode not in ok_codes:
        raise ResticError.from_stderr(
            command=command, url=repo.url, returncode=returncode, stderr=stderr
        )
    return returncode, stdout, stderr


def read_text(file: Any) -> str:
    file.seek(0)
    return str(file.read().decode("utf-8", "replace"))


def tag_pairs(tags: dict[str, str]) -> list[str]:
    pairs = []
    for key, value in tags.items():
        if not _TAG_KEY.match(key) or not _TAG_VALUE.match(value):
            raise ValueError(f"Refusing unexpected restic tag {key!r}={value!r}.")
        pairs.append(f"{key}={value}")
    return pairs


def tag_args(tags: dict[str, str]) -> list[str]:
    return [arg for pair in tag_pairs(tags) for arg in ("--tag", pair)]


def snapshot_id(value: str) -> str:
    if not _SNAPSHOT_ID.match(value):
        raise ValueError(f"Refusing unexpected snapshot id {value!r}.")
    return value


# -- snapshots ------------------------------------------------------------------


def _parse_time(value: str) -> datetime:
    # restic writes nanoseconds; Python keeps microseconds.
    value = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", value)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_snapshot(raw: dict[str, Any]) -> Snapshot:
    return Snapshot(
        id=raw["id"],
        short_id=raw.get("short_id", raw["id"][:8]),
        time=_parse_time(raw["time"]),
        tags=dict(tag.partition("=")[::2] for tag in raw.get("tags") or []),
        paths=list(raw.get("paths") or []),
        hostname=raw.get("hostname", ""),
    )


def snapshots(repo: Repository, *, tags: dict[str, str] | None = None) -> list[Snapshot]:
    """Snapshots carrying all of ``tags`` (every snapshot without), oldest first."""
    args = ["snapshots", "--json"]
    if tags:
        args += ["--tag", ",".join(tag_pairs(tags))]
    _, stdout, _ = run(repo, args)
    parsed = (_parse_snapshot(raw) for raw in json.loads(stdout or "[]"))
    return sorted(parsed, key=lambda s: s.time)


def forget(repo: Repository, ids: Sequence[str], *, prune: bool = False) -> None:
    if not ids:
        return
    run(repo, ["forget", *(["--prune"] if prune else []), *map(snapshot_id, ids)])


# -- the end of a backup run ------------------------------------------------------


def parse_summary(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if message.get("message_type") == "summary":
                return dict(message)
    raise ResticError("restic backup printed no summary line.", kind="failed")


def summary_of_run(repo: Repository, run_id: str, message: dict[str, Any]) -> Summary:
    """The summary, with the snapshot's full id read back from the repository."""
    short = str(message.get("snapshot_id", ""))
    found = [s for s in snapshots(repo, tags={"run": run_id}) if s.id.startswith(short)]
    if not short or len(found) != 1:
        raise ResticError(
            f"restic reported snapshot {short!r} but {repo.url} holds {len(found)} "
            f"matching snapshots of run {run_id}.",
            kind="failed",
        )
    return Summary(
        snapshot_id=found[0].id,
        total_bytes=int(message.get("total_bytes_processed", 0)),
        bytes_added=int(message.get("data_added", 0)),
        files=int(message.get("total_files_processed", 0)),
        duration_s=float(message.get("total_duration", 0.0)),
    )


def remove_run(repo: Repository, run_id: str, *, unlock: bool = False) -> str:
    """Forget every snapshot of a failed run; returns what could not be done ("" if all)."""
    try:
        if unlock:
            run(repo, ["unlock"])  # removes stale locks only, such as a killed restic's
        if leftovers := [s.id for s in snapshots(repo, tags={"run": run_id})]:
            log.warning("forgetting snapshots %s of failed run %s", leftovers, run_id)
            forget(repo, leftovers)
    except ResticError as exc:
        return f" (Making sure run {run_id} left no snapshot failed too: {exc.message})"
    return ""
