"""Child processes that produce a byte stream, and the pump that moves it on.

A producer (``mariadb-dump``, ``mariabackup --stream``...) writes a backup to
its stdout; ``backups.restic.backup_stream`` pumps that into ``restic backup
--stdin`` in Python, so that it alone decides whether restic ever sees the end
of the stream (the end is what makes restic write a snapshot).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from backups.restic.errors import ProducerFailed
from farm import processes

CHUNK = 1 << 20
TAIL = 64 * 1024
# The environment a child gets besides what the caller adds: no inherited
# secrets (MYSQL_PWD, AWS_*, RESTIC_*), no surprises.
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "TZ")


def base_env(**extra: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra)
    return env


class StreamProducer(Protocol):
    """A child process writing a backup to its stdout."""

    description: str

    def start(self) -> None: ...

    @property
    def stdout(self) -> IO[bytes]: ...

    def wait(self) -> int:
        """Wait for the process to end, clean up after it, return its exit status."""
        ...

    def kill(self) -> None: ...

    def check_complete(self, tail: bytes) -> str | None:
        """After exit status 0: why the stream (ending with ``tail``) is incomplete, or None."""
        ...

    def stderr_tail(self) -> str: ...

    def failure(self, message: str, *, stderr_tail: str = "") -> ProducerFailed:
        """The error the backup fails with when this producer failed (its own words in
        ``stderr_tail``): a producer knows which of its failures are worth a retry."""
        ...


class SubprocessProducer:
    """A producer that runs ``argv``; subclasses add completeness checks and set-up."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        description: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = base_env() if env is None else dict(env)
        self.description = description or os.path.basename(self.argv[0])
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The argv to run (subclasses may prepare files here)."""
        return self.argv

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError(f"{self.description} was already started")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the producer)
        try:
            self._proc = processes.popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=self.env,
                bufsize=0,
            )
        except BaseException:
            self.cleanup()
            raise
        enlarge_pipe(self.stdout)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.description} has not been started")
        return self._proc

    @property
    def stdout(self) -> IO[bytes]:
        stdout = self.process.stdout
        assert stdout is not None
        return stdout

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self) -> int:
        try:
            return self.process.wait()
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.cleanup()

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def cleanup(self) -> None:
        """Remove what ``command()`` prepared (credentials files); safe to call twice."""

    def check_complete(self, tail: bytes) -> str | None:
        return None

    def stderr_tail(self, limit: int = 4000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - limit))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def failure(self, message: str, *, stderr_tail: str = "") -> ProducerFailed:
        return ProducerFailed(message, stderr_tail=stderr_tail)


def enlarge_pipe(pipe: IO[bytes]) -> None:
    """Ask for a 1 MiB pipe buffer: fewer, larger reads (best effort)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)


@dataclass
class PumpResult:
    count: int
    tail: bytes
    read_error: str | None = None
    write_error: str | None = None
    callback_error: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.read_error or self.write_error or self.callback_error)


def pump(
    source: IO[bytes], sink: IO[bytes], *, on_data: Callable[[bytes], None] | None = None
) -> PumpResult:
    """Copy ``source`` into ``sink`` until the end or an error; never closes ``sink``.

    ``on_data`` sees every chunk, then ``b""`` once the copying has stopped for
    whatever reason. Stops at the first error, keeping the last ``TAIL`` bytes.
    """
    result = PumpResult(0, b"")
    tail = bytearray()
    src, dst = source.fileno(), sink.fileno()
    try:
        while True:
            try:
                chunk = os.read(src, CHUNK)
            except OSError as exc:
                result.read_error = f"reading the stream failed: {exc}"
                break
            if not chunk:
                break
            result.count += len(chunk)
            tail += chunk
            if len(tail) > 2 * TAIL:
                del tail[:-TAIL]
            if on_data is not None:
                try:
                    on_data(chunk)
                except Exception as exc:
                    result.callback_error = f"watching the stream failed: {exc!r}"
                    break
            try:
                _write_all(dst, chunk)
            except OSError as exc:
                result.write_error = f"writing the stream failed: {exc}"
                break
    finally:
        if on_data is not None:
            try:
                on_data(b"")
            except Exception as exc:
                result.callback_error = result.callback_error or f"watching failed: {exc!r}"
    result.tail = bytes(tail[-TAIL:])
    return result


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
