"""``restic backup --stdin`` fed by a producer process: the heart of database backups.

restic 0.14 has no ``--stdin-from-command``, and to restic the end of its stdin
means "the data is complete, write the snapshot". So the stream is pumped in
Python, and restic's stdin is closed only after the producer has exited 0 and
its stream has been found complete. Otherwise restic is interrupted while its
stdin is still open (it then writes no snapshot), any snapshot carrying this
run's ``run=<uuid>`` tag is forgotten anyway, and the producer's failure
(``StreamProducer.failure``: ProducerFailed, or mariadb-dump's DumpFailed) is raised.

restic runs under ``setpriv --pdeathsig KILL`` where available: if this worker
dies, restic is killed rather than left to read the end of a cut stream.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from typing import IO

from backups.restic.cli import (
    HOST,
    Repository,
    Summary,
    argv,
    env,
    interrupt,
    parse_summary,
    read_text,
    remove_run,
    summary_of_run,
    tag_args,
)
from backups.restic.errors import ResticError, classify
from backups.restic.pipes import StreamProducer, enlarge_pipe, pump
from farm import processes

_FILENAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _command(repo: Repository, args: list[str]) -> list[str]:
    command = argv(repo, *args)
    if shutil.which("setpriv"):
        return ["setpriv", "--pdeathsig", "KILL", *command]
    return command


def backup_stream(
    repo: Repository,
    producer: StreamProducer,
    *,
    filename: str,
    tags: dict[str, str],
    on_data: Callable[[bytes], None] | None = None,
) -> Summary:
    """Back the producer's stdout up as ``/<filename>``; never leaves a snapshot on failure.

    ``on_data`` sees every chunk as it passes, then ``b""`` when the stream has
    stopped (it runs on this thread and must be quick).
    """
    if not _FILENAME.match(filename):
        raise ValueError(f"Refusing unexpected stdin filename {filename!r}.")
    run_id = uuid.uuid4().hex
    args = ["backup", "--stdin", "--stdin-filename", filename, "--host", HOST, "--json"]
    args += tag_args({**tags, "run": run_id})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        restic = processes.popen(
            _command(repo, args),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            env=env(repo),
            bufsize=0,
        )
        stdin = restic.stdin
        assert stdin is not None
        enlarge_pipe(stdin)
        try:
            return _feed(repo, run_id, producer, restic, stdin, out, err, on_data)
        finally:
            # Whatever happened (even KeyboardInterrupt): restic is stopped while its
            # stdin is still open, and only then is the pipe closed.
            producer.kill()
            if restic.poll() is None:
                interrupt(restic)
            with contextlib.suppress(OSError):
                stdin.close()


def _feed(
    repo: Repository,
    run_id: str,
    producer: StreamProducer,
    restic: subprocess.Popen[bytes],
    stdin: IO[bytes],
    out: IO[bytes],
    err: IO[bytes],
    on_data: Callable[[bytes], None] | None,
) -> Summary:
    try:
        producer.start()
    except Exception as exc:
        killed = interrupt(restic)
        leftover = remove_run(repo, run_id, unlock=killed)
        raise producer.failure(
            f"{producer.description} could not be started: {exc}; no snapshot was kept.{leftover}"
        ) from exc

    result = pump(producer.stdout, stdin, on_data=on_data)
    if not result.ok:
        producer.kill()
    status = producer.wait()

    if result.write_error or (restic.poll() or 0) != 0:
        # restic stopped taking data: it failed by itself (repository, password, space).
        raise _restic_failed(repo, run_id, restic, err, killed=interrupt(restic))

    problem = result.callback_error or result.read_error
    if problem is None and status != 0:
        problem = f"{producer.description} exited with status {status}"
    if problem is None:
        problem = producer.check_complete(result.tail)
    if problem is not None:
        killed = interrupt(restic)
        leftover = remove_run(repo, run_id, unlock=killed)
        said = producer.stderr_tail()
        raise producer.failure(
            f"The backup was abandoned and no snapshot kept: {problem}."
            + (f" {producer.description} said: {said}" if said else "")
            + leftover,
            stderr_tail=said,
        )

    stdin.close()  # the stream is complete: now restic may write the snapshot
    if restic.wait() != 0:
        raise _restic_failed(repo, run_id, restic, err, killed=False)
    return summary_of_run(repo, run_id, parse_summary(read_text(out)))


def _restic_failed(
    repo: Repository,
    run_id: str,
    restic: subprocess.Popen[bytes],
    err: IO[bytes],
    *,
    killed: bool,
) -> ResticError:
    stderr = read_text(err)
    # A restic that could not reach the repository wrote nothing there, and
    # looking again would only wait through the same retries.
    if classify(stderr) != "unreachable":
        stderr += remove_run(repo, run_id, unlock=killed)
    return ResticError.from_stderr(
        command="backup", url=repo.url, returncode=restic.returncode, stderr=stderr
    )
