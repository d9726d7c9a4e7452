"""Issue 9, item 6: steps longer than the queue's timeout, and children that outlive workers.

- a child started through farm.processes dies when its parent is SIGKILLed
  (a plain subprocess does not), and the runner can kill its whole group;
- an operation delivered more than FARM_OPERATION_MAX_ATTEMPTS times fails
  with a clear message instead of being re-queued forever;
- the settings refuse a task timeout that a single restic command outlasts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from farm.models import Operation, OperationStatus, StepStatus
from farm.operations import retry_operation, start_operation
from farm.runner import claim, run_operation
from tests.farm.test_settings import _boot
from tests.support.kinds import read_journal
from tests.support.processes import ROOT

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]


def pid_alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def parent_with_a_child(how: str) -> tuple[subprocess.Popen[str], int]:
    """A Python process that starts a long child (``how``: farm or plain) and waits."""
    start = {
        "farm": "from farm import processes; child = processes.popen(SLEEPER)",
        "plain": "import subprocess; child = subprocess.Popen(SLEEPER)",
    }[how]
    code = (
        f"import time; SLEEPER = {SLEEPER!r}; {start}; "
        "print(child.pid, flush=True); time.sleep(300)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


def test_item_6_a_child_started_through_farm_processes_dies_when_its_parent_is_killed():
    parent, child = parent_with_a_child("farm")
    assert pid_alive(child)
    assert os.getpgid(child) == child, "the child leads its own process group"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_dead(child), "the child outlived its SIGKILLed parent"


def test_a_plain_child_would_outlive_its_parent():
    """The control: without farm.processes the child keeps running (what restic did)."""
    parent, child = parent_with_a_child("plain")
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert not wait_dead(child, timeout=1)
    finally:
        os.kill(child, signal.SIGKILL)


def test_item_6_killing_an_owners_children_kills_their_whole_process_group():
    from farm import processes

    grandchild_code = (
        f"import subprocess, time; g = subprocess.Popen({SLEEPER!r}); "
        "print(g.pid, flush=True); time.sleep(300)"
    )
    with processes.owned_by("worker-x"):
        child = processes.popen([sys.executable, "-c", grandchild_code], stdout=subprocess.PIPE)
    assert child.stdout is not None
    grandchild = int(child.stdout.readline())
    assert [p.pid for p in processes.live_children("worker-x")] == [child.pid]
    assert processes.kill_owned("worker-x") == [child.pid]
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert wait_dead(grandchild), "the grandchild was in the group and died too"
    assert processes.kill_owned("worker-x") == []


def test_item_6_run_returns_like_subprocess_run_and_kills_on_timeout(tmp_path):
    from farm import processes

    done = processes.run([sys.executable, "-c", "print('hi')"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "hi\n")
    with pytest.raises(subprocess.CalledProcessError):
        processes.run([sys.executable, "-c", "raise SystemExit(3)"], check=True)
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        processes.run(SLEEPER, timeout=0.5)
    assert time.monotonic() - began < 10


def test_item_6_every_subprocess_of_the_backups_app_goes_through_farm_processes():
    started_directly = re.compile(r"\bsubprocess\.(?:Popen|run|call|check_call|check_output)\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "backups").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if started_directly.search(line)
    ]
    assert offenders == []


# -- attempts ---------------------------------------------------------------------


def die_inside_the_step(operation: Operation, worker: str) -> None:
    """A worker claims the operation, starts step alpha, and is killed there."""
    assert claim(operation.pk, worker)
    operation.steps.filter(name="alpha").update(status=StepStatus.RUNNING)
    Operation.objects.filter(pk=operation.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=3600)
    )


@pytest.mark.django_db
def test_item_6_an_operation_delivered_too_often_fails_instead_of_running_again(tmp_path, settings):
    settings.FARM_OPERATION_MAX_ATTEMPTS = 2
    operation = start_operation(
        "test.recorded",
        target_type="test",
        target_id="attempts",
        params={"journal": str(tmp_path / "journal")},
    )
    die_inside_the_step(operation, "worker-a")
    die_inside_the_step(operation, "worker-b")

    assert run_operation(operation.pk) == OperationStatus.FAILED
    operation.refresh_from_db()
    assert operation.status == OperationStatus.FAILED
    assert operation.attempts == 3
    assert not operation.retryable, "not for the workers to try again"
    assert operation.error.startswith("Stopped after 2 attempts")
    assert "“Step alpha”" in operation.error and str(settings.Q_TIMEOUT) in operation.error
    assert operation.lock_key is None
    alpha = operation.steps.get(name="alpha")
    assert alpha.status == StepStatus.FAILED and "Stopped after 2 attempts" in alpha.log
    assert read_journal(tmp_path / "journal") == [], "the step was not run a third time"
    assert run_operation(operation.pk) == "not claimed", "a late delivery does nothing"

    # A person can still retry it, and it counts its attempts afresh.
    assert operation.can_retry()
    retry_operation(operation)
    assert run_operation(operation.pk) == OperationStatus.SUCCEEDED
    operation.refresh_from_db()
    assert operation.attempts == 1


# -- settings ---------------------------------------------------------------------


def test_item_6_the_settings_refuse_a_queue_timeout_shorter_than_a_restic_command():
    bad = _boot({"FARM_Q_TIMEOUT": "3600"})
    assert bad.returncode != 0
    assert "FARM_Q_TIMEOUT (3600) must be larger than FARM_RESTIC_TIMEOUT (21600)" in bad.stderr
    equal = _boot({"FARM_Q_TIMEOUT": "600", "FARM_RESTIC_TIMEOUT": "600"})
    assert equal.returncode != 0 and "FARM_RESTIC_TIMEOUT (600)" in equal.stderr
    ok = _boot(
        {"FARM_Q_TIMEOUT": "700", "FARM_RESTIC_TIMEOUT": "600"},
        "from django.conf import settings; print(settings.Q_CLUSTER['timeout'])",
    )
    assert ok.returncode == 0, ok.stderr
    default = _boot(
        {},
        "from django.conf import settings as s; from backups.restic import settings as b; "
        "print(s.Q_CLUSTER['timeout'], s.Q_CLUSTER['retry'], b.FARM_RESTIC_TIMEOUT, "
        "s.FARM_OPERATION_MAX_ATTEMPTS)",
    )
    assert default.returncode == 0, default.stderr
    timeout, retry, restic, attempts = map(int, default.stdout.split()[-4:])
    assert restic < timeout < retry and attempts == 5
