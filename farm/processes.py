"""Child processes that die with their worker.

Every external command a step runs (restic, mariadb-dump, mariadb, mbstream,
mariabackup) starts here, never with ``subprocess`` directly, so that:

- it runs in its own process group, which can be killed whole (restic's
  helpers, a shell a tool may start) without touching the worker's group;
- it gets ``PR_SET_PDEATHSIG=SIGKILL`` (Linux): when the worker is killed
  (SIGKILL, the task queue's timeout, the OOM killer) the child is killed too,
  instead of running on while another worker repeats the step. The kernel sends
  the signal when the *thread* that started the child ends, so start children
  from the thread that waits for them;
- it is registered under the operation's owner (the worker identity), so the
  runner can kill every child of a step when its claim on the operation is
  lost (``kill_owned``).

This module knows nothing of Django, so a bare Python process can use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

_prctl: Any = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _prctl = _libc.prctl
        _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _prctl.restype = ctypes.c_int
    except (OSError, AttributeError):  # pragma: no cover (no libc prctl)
        _prctl = None

_lock = threading.Lock()
_children: dict[str, weakref.WeakSet[subprocess.Popen[Any]]] = {}
_active_owners: dict[int, str] = {}  # thread ident -> owner
_local = threading.local()


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """The preexec function: ask the kernel for SIGKILL when the parent goes.

    Runs in the child between fork and exec: no locks, no imports, no logging.
    """

    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0)
        # The parent may have died before prctl ran: then nobody would send the signal.
        if os.getppid() != parent_pid:
            os._exit(137)

    return setup


def current_owner() -> str | None:
    """The owner children started now are registered under.

    The thread's own owner when it set one; otherwise, when exactly one owner is
    active in this process (a queue worker runs one operation at a time), that
    one, so helper threads a step starts count as the step's too.
    """
    owner: str | None = getattr(_local, "owner", None)
    if owner is not None:
        return owner
    with _lock:
        owners = set(_active_owners.values())
    return owners.pop() if len(owners) == 1 else None


@contextlib.contextmanager
def owned_by(owner: str) -> Iterator[None]:
    """Children started inside this block (by this thread) belong to ``owner``."""
    previous = getattr(_local, "owner", None)
    _local.owner = owner
    ident = threading.get_ident()
    with _lock:
        _active_owners[ident] = owner
    try:
        yield
    finally:
        _local.owner = previous
        with _lock:
            if previous is None:
                _active_owners.pop(ident, None)
            else:
                _active_owners[ident] = previous


def popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(argv, ...)`` in its own process group, dying with this process."""
    if kwargs.get("shell"):
        raise ValueError("No shell strings: pass an argv list.")
    for reserved in ("preexec_fn", "process_group", "start_new_session"):
        if reserved in kwargs:
            raise ValueError(f"farm.processes sets {reserved} itself.")
    proc: subprocess.Popen[Any] = subprocess.Popen(
        list(argv),
        preexec_fn=_die_with_parent(os.getpid()),
        process_group=0,
        **kwargs,
    )
    owner = current_owner()
    if owner is not None:
        with _lock:
            _children.setdefault(owner, weakref.WeakSet()).add(proc)
    return proc


def run(
    argv: Sequence[str],
    *,
    input: Any = None,
    capture_output: bool = False,
    timeout: float | None = None,
    check: bool = False,
    **kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` through ``popen``: on a timeout or an error the whole group is killed."""
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    if capture_output:
        kwargs["stdout"] = subprocess.PIPE
        kwargs["stderr"] = subprocess.PIPE
    with popen(argv, **kwargs) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except BaseException:
            kill_group(proc)
            proc.wait()
            raise
        returncode = proc.poll()
        assert returncode is not None
    if check and returncode:
        raise subprocess.CalledProcessError(returncode, list(argv), stdout, stderr)
    return subprocess.CompletedProcess(list(argv), returncode, stdout, stderr)


def kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> bool:
    """Signal the child's whole process group; False when it had already been reaped."""
    if proc.returncode is not None:
        return False  # reaped: its pid (and group id) may belong to someone else now
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return False
    return True


def kill_owned(owner: str) -> list[int]:
    """Kill the process groups of every live child of ``owner``; returns their pids."""
    with _lock:
        children = list(_children.pop(owner, ()))
    killed = [proc.pid for proc in children if kill_group(proc)]
    if killed:
        logger.warning("killed the process groups of %s (owner %s)", killed, owner)
    return killed


def live_children(owner: str) -> list[subprocess.Popen[Any]]:
    with _lock:
        return [p for p in _children.get(owner, ()) if p.returncode is None]
